"""The authorisation matrix (issue 12), generated from the app's route table: every route x
method x role (anonymous included) x output format, asserting allow or deny.

The expectation comes from the declarations, never from calling the route: the action each
route names in its decorator (web/authz.py) and the roles the policy table gives that action
(services/policy.py). A route that names no action fails here, by name.

After a merge that adds routes, roles or actions, the only edits are data:
- a new role: a demo account in `auth.DEMO_USERS` (the matrix signs in as each of them);
- a new GET route: nothing, unless a path parameter is new (add it to `_path_values`) or it
  answers something other than 200 and JSON/HTML (add it to `REQUESTS`);
- a new POST route: how to make a valid request, in `REQUESTS`.

Every POST is sent as our own pages send it (web/csrf.py): this site's Origin and the CSRF
token bound to the cookie sent (the session's, or a pre-session one when signed out), so a
refusal is the policy's, never the CSRF check's. Each session has stated a justification for
every purpose (conftest.sign_in), so an allowed nominal, radius search or export answers.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from placeharm.config import load_settings
from placeharm.errors import ConfigError
from placeharm.services import auth, exports, policy
from placeharm.services.policy import User
from placeharm.web import authz
from placeharm.web.app import create_app

from .conftest import csrf_headers, login_token, origin, sign_in
from .tiles import png, write_pmtiles

ANONYMOUS = "anonymous"
ROLE_OF = {name: role for name, (_, role) in auth.DEMO_USERS.items()}
WHO = (*ROLE_OF, ANONYMOUS)
TILE = png((166, 206, 227))

# what each format answers when allowed (a prefix of the Content-Type)
CONTENT_TYPE = {
    "html": "text/html",  # a page asked for by a browser (Accept: text/html)
    "html-as-api": "text/html",  # the same page asked for by a script (Accept: */*)
    "json": "application/json",
    "csv": "text/csv",
    "geojson": "application/geo+json",
    "gpkg": exports.MEDIA_TYPE,
    "event-stream": "text/event-stream",
    "png": "image/png",
    "javascript": "text/javascript",
    "css": "text/css",
    "redirect": "",  # a 303; the Location is checked instead
}


@dataclass(frozen=True)
class Req:
    """How to make a valid request to a route that a plain GET cannot serve, and what it
    answers when allowed."""

    format: str
    status: int = 200
    url: str | None = None  # a fixed URL (mounts); else the route path with values filled in
    data: dict[str, str] = field(default_factory=dict)  # a form; {who} is replaced
    files: dict[str, tuple[str, bytes, str]] = field(default_factory=dict)
    location: str | None = None  # where an allowed redirect goes (a prefix)
    fresh_session: bool = False  # the request ends its session: sign in anew for it
    stream: bool = False  # an endless event stream: read its first event and disconnect
    says: str | None = None  # what an allowed answer's body contains (e.g. a handler's 404)


REQUESTS: dict[str, Req] = {
    "* /static": Req("css", url="/static/style.css"),
    "GET /": Req("redirect", 303, location="/overview"),
    "POST /login": Req(
        "redirect",
        303,
        data={"username": "{who}", "password": "{who}" + auth.DEMO_PASSWORD_SUFFIX},
    ),
    # Single sign-on is not set up in this fixture (no identity provider; tests/web/test_sso.py
    # runs one): the routes are public, and their handler answers that it is not set up.
    "GET /login/sso": Req("json", 404, says="single sign-on is not set up"),
    "GET /auth/callback": Req("json", 404, says="single sign-on is not set up"),
    "POST /logout": Req("redirect", 303, location="/login", fresh_session=True),
    "GET /api/radius": Req("json", url="/api/radius?lat=54.9783&lon=-1.6178&radius_m=500"),
    # enabling an enabled account changes nothing and ends no session
    "POST /admin/users/{username}/{action}": Req("json"),
    # a consistent copy of the store into backup_dir (issue 13)
    "POST /admin/backup": Req("json"),
    # marked synthetic: a force's own records would end every demo session (issue 12)
    "POST /api/upload": Req(
        "json",
        data={"kind": "groups"},
        files={
            "file": (
                "groups.csv",
                b"group_id,group_type,synthetic\nMATRIX-G1,OCG,true\n",
                "text/csv",
            )
        },
    ),
    "POST /justification": Req(
        "redirect",
        303,
        data={"purpose": "nominal", "reason": "investigation", "text": "matrix", "next": "/help"},
        location="/help",
    ),
    "POST /api/justification": Req(
        "json", data={"purpose": "nominal", "reason": "investigation", "text": "matrix"}
    ),
    "GET /events": Req("event-stream", stream=True),
    "GET /tiles/{z}/{x}/{y}": Req("png"),
    "GET /vendor/{name}": Req("javascript"),
}


def _route_table() -> list[authz.RoutePolicy]:
    """The routes and their declared actions, read at collection time from an app on an
    empty store (the route table does not depend on the data)."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(load_settings(db=Path(folder) / "routes.duckdb"))
        try:
            return authz.route_policies(app)
        finally:
            app.state.placeharm.store.close()


ROUTES = _route_table()


def _key(entry: authz.RoutePolicy) -> str:
    return f"{entry.method} {entry.path}"


def _formats(entry: authz.RoutePolicy) -> list[str]:
    known = REQUESTS.get(_key(entry))
    if known is not None:
        return [known.format]
    for suffix in ("csv", "geojson", "gpkg"):
        if entry.path.endswith(f".{suffix}"):
            return [suffix]
    route = entry.route
    if isinstance(route, APIRoute) and _is_html(route):
        return ["html", "html-as-api"]
    return ["json"]


def _is_html(route: APIRoute) -> bool:
    response_class = route.response_class
    return isinstance(response_class, type) and issubclass(response_class, HTMLResponse)


CASES = [
    pytest.param(entry, who, fmt, id=f"{_key(entry)} | {who} | {fmt}")
    for entry in ROUTES
    for fmt in _formats(entry)
    for who in WHO
]


def _undeclared(routes: list[authz.RoutePolicy]) -> list[str]:
    return [
        f"{_key(e)} ({e.name}) declares {list(e.actions) or 'no policy action'}"
        for e in routes
        if len(e.actions) != 1
    ]


HOW_TO_DECLARE = (
    "every route names exactly one policy action in its decorator: "
    "dependencies=[allowed('<action in services/policy.py>')], or dependencies=[authz.PUBLIC] "
    "for a route anyone may open; a mounted app is wrapped in authz.PublicApp "
    "(docs/security/authz-matrix.md)"
)


def test_every_route_declares_one_policy_action():
    assert ROUTES, "the route table is empty"
    missing = _undeclared(ROUTES)
    assert not missing, f"{HOW_TO_DECLARE}; these do not:\n  " + "\n  ".join(missing)


def test_a_route_without_a_policy_action_is_caught(tmp_path: Path):
    """The check above fails on a new route that only asks for a signed-in user (the
    pattern before issue 12), on a plain route and on a mount not declared public."""
    app = create_app(load_settings(db=tmp_path / "routes.duckdb"))
    try:
        before = {m.split(" (")[0] for m in _undeclared(authz.route_policies(app))}

        @app.get("/api/new-report")
        def new_report() -> dict[str, str]:
            return {}

        async def files(scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("never called")

        app.mount("/files", files)
        app.add_route("/plain", lambda request: None)
        after = {m.split(" (")[0] for m in _undeclared(authz.route_policies(app))}
        assert after - before == {"GET /api/new-report", "* /files", "* /plain"}
    finally:
        app.state.placeharm.store.close()


def test_an_action_the_policy_does_not_know_fails_when_declared():
    async def signed_in(request: Any) -> User:
        raise AssertionError("never called")

    with pytest.raises(ConfigError, match="no policy action 'nominals'"):
        authz.requires("nominals", signed_in)


# -- the matrix ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(module_demo: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A copy of the demo store as built, on the engine under test (PostgreSQL: moved by
    migrate-store), with a base map archive, so an allowed tile is a 200, not a 404. Its own
    copy on both engines: the matrix uploads, backs up and changes accounts, which no other
    module's store should see, and each engine starts from the same state."""
    archive = tmp_path_factory.mktemp("matrix") / "base.pmtiles"
    write_pmtiles(archive, {(0, 0, 0): TILE})
    db = module_demo
    with TestClient(create_app(load_settings(db=db, pmtiles=archive))) as client:
        yield client


@pytest.fixture(scope="module")
def cookies(client: TestClient) -> dict[str, dict[str, str]]:
    return {name: sign_in(client, name) for name in ROLE_OF} | {ANONYMOUS: {}}


@pytest.fixture(scope="module")
def path_values(client: TestClient, cookies: dict[str, dict[str, str]]) -> dict[str, str]:
    return _path_values(client, cookies["admin"])


def _path_values(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    """A real value for every path parameter, found through the API as the admin: the
    highest-harm ward, a CHB site, a nominal and a group of the demo store."""

    def get(url: str) -> Any:
        response = _send(client, "GET", url, admin)
        assert response.status_code == 200, (url, response.text)
        return response.json()

    ward = get("/api/overview")["tables"]["areas"][0]["area_code"]
    sites = get(f"/api/ward/{ward}")["chb_sites"]
    nominal = get("/api/records?kind=nominals&page_size=1")["tables"]["records"][0]
    group = get("/api/records?kind=groups&page_size=1")["tables"]["records"][0]
    crime = get("/api/records?kind=crimes&q=Burglary&page_size=1")["tables"]["records"][0]
    assert sites, "the demo store has no CHB site"
    return {
        "code": ward,
        "site": sites[0],
        "nominal_id": nominal["nominal_id"],
        "group_id": group["group_id"],
        "crime_id": crime["crime_id"],
        "z": "0",
        "x": "0",
        "y": "0",
        "name": "maplibre-gl.js",
        "username": "officer",
        "action": "enable",
    }


def _send(
    client: TestClient,
    method: str,
    url: str,
    cookie: dict[str, str],
    accept: str = "*/*",
    **kwargs: Any,
) -> Any:
    headers = {"Accept": accept}
    if method not in ("GET", "HEAD"):
        cookie, token = _from_our_page(client, cookie)
        headers |= token
    client.cookies.clear()
    for name, value in cookie.items():
        client.cookies.set(name, value)
    return client.request(method, url, headers=headers, follow_redirects=False, **kwargs)


def _from_our_page(
    client: TestClient, cookie: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The cookies and headers a POST from one of our pages carries: this site's Origin and
    the CSRF token bound to the session, or, signed out, to the pre-session cookie the
    sign-in page sets."""
    client.cookies.clear()
    if cookie:
        for name, value in cookie.items():
            client.cookies.set(name, value)
        return cookie, csrf_headers(client)
    token = login_token(client)  # keeps the pre-session cookie in the client
    pre_session = {name: value for name, value in client.cookies.items()}
    assert pre_session, "the sign-in page set no pre-session cookie"
    return pre_session, {"Origin": origin(client), "X-CSRF-Token": token}


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


def _first_event(client: TestClient, url: str, cookie: dict[str, str]) -> Answer:
    """An endless event stream: the status, headers and first event, then a disconnect
    (the test client would wait for the end of a stream that never ends)."""
    app = client.app
    header = "; ".join(f"{k}={v}" for k, v in cookie.items())
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"accept", b"*/*")]
        + ([(b"cookie", header.encode())] if header else []),
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    got: dict[str, Any] = {"body": b""}

    async def run() -> None:
        disconnected = asyncio.Event()
        asked = False

        async def receive() -> dict[str, Any]:
            nonlocal asked
            if not asked:
                asked = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                got["status"] = message["status"]
                got["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                got["body"] += message.get("body", b"")
                if got["body"] or not message.get("more_body"):
                    disconnected.set()

        await asyncio.wait_for(app(scope, receive, send), timeout=10)

    asyncio.run(run())
    return Answer(got["status"], got["headers"], got["body"])


@pytest.mark.parametrize(("entry", "who", "fmt"), CASES)
def test_authorisation_matrix(
    client: TestClient,
    cookies: dict[str, dict[str, str]],
    path_values: dict[str, str],
    web_engine: str,
    entry: authz.RoutePolicy,
    who: str,
    fmt: str,
):
    case = f"{_key(entry)} as {who} ({fmt})"
    if len(entry.actions) != 1:
        pytest.fail(f"{case}: {HOW_TO_DECLARE}; this route declares {list(entry.actions)}")
    action = entry.actions[0]
    if action == authz.PUBLIC_ACTION:
        allowed = True
    elif who == ANONYMOUS:
        allowed = False
    else:
        allowed = policy.allowed(User(who, who, ROLE_OF[who]), action)
    req = REQUESTS.get(_key(entry)) or Req(fmt)
    if _key(entry) == "POST /admin/backup" and web_engine == "postgresql":
        # allowed, and answered: a PostgreSQL store is backed up with PostgreSQL's own tools
        req = Req("json", 400, says="pg_dump")
    if entry.method not in ("GET", "*") and _key(entry) not in REQUESTS:
        pytest.fail(f"{case}: add how to make a valid {entry.method} request to REQUESTS")

    url = req.url or entry.path
    dependant = getattr(entry.route, "dependant", None)
    for name in [p.name for p in dependant.path_params] if dependant else []:
        if name not in path_values:
            pytest.fail(f"{case}: no value for path parameter {{{name}}}; add it to _path_values")
        url = url.replace(f"{{{name}}}", path_values[name])
    cookie = cookies[who]
    if req.fresh_session and who != ANONYMOUS:
        cookie = sign_in(client, who)
    method = "GET" if entry.method == "*" else entry.method
    accept = "text/html" if fmt == "html" else "*/*"
    if req.stream:
        response: Any = _first_event(client, url, cookie)
    else:
        data = {k: v.replace("{who}", who) for k, v in req.data.items()}
        extra: dict[str, Any] = {"data": data} if data else {}
        if req.files:
            extra["files"] = req.files
        response = _send(client, method, url, cookie, accept, **extra)
    got = f"{case}: expected {'allow' if allowed else 'deny'} from policy action {action!r}"
    got += f", got {response.status_code} {response.content[:200]!r}"

    if allowed:
        assert response.status_code == req.status, got
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith(CONTENT_TYPE[fmt]), f"{got} as {content_type!r}"
        if req.location is not None:
            assert response.headers["location"].startswith(req.location), got
        if req.stream:
            assert response.content.startswith(b"event: data\n"), got
        if req.says is not None:
            assert req.says in response.content.decode(), got
    elif who == ANONYMOUS and fmt == "html":
        # a browser is sent to sign in, and back here afterwards
        assert response.status_code == 303, got
        assert response.headers["location"] == "/login?" + urlencode({"next": url}), got
    else:
        assert response.status_code == 403, got
        if fmt == "html":
            assert response.headers["content-type"].startswith("text/html"), got
        else:
            assert response.json().keys() == {"error", "status"}, got  # only the refusal
            assert "forgery" not in response.json()["error"], got  # the policy's, not CSRF's


def test_a_refused_request_is_refused_before_its_parameters_are_read(
    client: TestClient, cookies: dict[str, dict[str, str]]
):
    """The policy runs before the filters are parsed: a refusal never says whether the
    rest of the request was valid."""
    for who, url in (
        (ANONYMOUS, "/api/overview?from=2021-13&index=no-such-index"),
        (ANONYMOUS, "/api/records?page=not-a-number"),
        ("partner", "/api/nominal/NO-SUCH?from=2021-13"),
        ("officer", "/api/admin?by=no-such-set"),
    ):
        response = _send(client, "GET", url, cookies[who])
        assert response.status_code == 403, (who, url, response.text)
        assert response.json().keys() == {"error", "status"}
