"""schemathesis against the app's OpenAPI description, signed in as each role and signed out
(issue 12): no request, however malformed, is a server error, and every answer has a status,
media type and body the description lists.

Bounded and reproducible for CI: `EXAMPLES` generated requests per operation and role (plus
schemathesis's coverage cases), derandomised, no example database, a 10 s limit per request.
Its own demo store, because the admin's fuzzed uploads write to it. docs/security/authz-matrix.md
says how long it takes.

Every request carries what our own pages send (web/csrf.py): this site's Origin and the CSRF
token bound to the session (signed out: to the sign-in page's pre-session cookie), so POSTs
reach their routes rather than stopping at the CSRF check."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from placeharm.config import load_settings
from placeharm.services import auth
from placeharm.web.app import create_app

from .conftest import build_demo_store, csrf_headers, login_token, origin, pg_copy, sign_in

ANONYMOUS = "anonymous"
WHO = (*auth.DEMO_USERS, ANONYMOUS)
# examples per operation and role; raise it for a deeper run (e.g. 200 before a release)
EXAMPLES = int(os.environ.get("PLACEHARM_SCHEMATHESIS_EXAMPLES", "10"))


def _description() -> dict[str, Any]:
    """The OpenAPI description, from an app on an empty store (it does not depend on data)."""
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(load_settings(db=Path(folder) / "schema.duckdb"))
        try:
            return app.openapi()
        finally:
            app.state.placeharm.store.close()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]

DESCRIPTION = _description()
schema = schemathesis.openapi.from_dict(DESCRIPTION)


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory,
    web_engine: str,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Any, dict[str, dict[str, str]]]]:
    """The schemathesis client, and the headers each of WHO sends: its session cookie (none
    when anonymous), this site's Origin and the CSRF token bound to the cookie. The store is
    a demo store of its own, on the engine under test (PostgreSQL: moved by migrate-store)."""
    path = tmp_path_factory.mktemp("schemathesis") / "api.duckdb"
    build_demo_store(path)
    db: Path | str = path if web_engine == "duckdb" else pg_copy(path, request)
    app = create_app(load_settings(db=db))
    with TestClient(app) as client:
        headers = {}
        for name in auth.DEMO_USERS:
            cookie = sign_in(client, name)
            client.cookies.clear()
            for key, value in cookie.items():
                client.cookies.set(key, value)
            headers[name] = {"Cookie": _cookie_header(cookie)} | csrf_headers(client)
        client.cookies.clear()
        token = login_token(client)  # the client keeps the pre-session cookie
        pre_session = dict(client.cookies.items())
        client.cookies.clear()
        headers[ANONYMOUS] = {
            "Cookie": _cookie_header(pre_session),
            "Origin": origin(client),
            "X-CSRF-Token": token,
        }
        yield asgi.get_client(app, max_stream_events=1), headers


def _cookie_header(cookie: dict[str, str]) -> str:
    return "; ".join(f"{name}={value}" for name, value in cookie.items())


@pytest.mark.parametrize("who", WHO)
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],  # a busy CI machine is not a fault
)
def test_api_answers_as_described(case: Any, api: Any, who: str) -> None:
    session, headers = api
    case.call_and_validate(session=session, headers=headers[who], checks=CHECKS, timeout=10)


def test_the_description_tested_is_the_one_served(api: Any):
    session, headers = api
    assert session.get("/api/openapi.json").status_code == 403  # sign in first
    assert session.get("/api/openapi.json", headers=headers[ANONYMOUS]).status_code == 403
    served = session.get("/api/openapi.json", headers=headers["partner"])
    assert served.status_code == 200
    assert served.json() == DESCRIPTION


def test_the_description_lists_every_filter_and_refusal():
    filtered = ["/api/overview", "/api/overview.csv", "/api/overview.geojson"]
    filtered += ["/api/overview.gpkg", "/api/records", "/api/records.csv"]
    filtered += [f"/api/ward/{{code}}{suffix}" for suffix in ("", ".csv", ".geojson", ".gpkg")]
    for path in filtered:
        names = {p["name"] for p in DESCRIPTION["paths"][path]["get"]["parameters"]}
        assert {"by", "from", "to", "index", "measures", "types"} <= names, path
    for path, item in DESCRIPTION["paths"].items():
        for method, operation in item.items():
            for status in ("400", "403", "404"):
                refusal = operation["responses"][status]["content"]
                assert list(refusal) == ["application/json"], (method, path, status)
                body = refusal["application/json"]["schema"]
                assert body["required"] == ["error", "status"], (method, path, status)
                assert body["additionalProperties"] is False
    media = {
        "/api/overview.csv": "text/csv",
        "/api/overview.geojson": "application/geo+json",
        "/api/overview.gpkg": "application/geopackage+sqlite3",
        "/api/records.csv": "text/csv",
        "/events": "text/event-stream",
        "/api/overview": "application/json",
    }
    for path, media_type in media.items():
        assert list(DESCRIPTION["paths"][path]["get"]["responses"]["200"]["content"]) == [
            media_type
        ], path


# -- regressions for what schemathesis found ----------------------------------------------


def test_starlette_refusals_have_the_same_shape(api: Any):
    """A malformed upload form, an unknown API path and a method not allowed were answered
    {"detail": ...}, not the documented {"error", "status"} (found by response conformance)."""
    session, headers = api
    admin = headers["admin"]  # with this site's Origin and CSRF token: past the CSRF check
    broken = session.post(
        "/api/upload",
        headers=admin | {"Content-Type": "multipart/form-data; boundary=xyz"},
        data=b"--xyz\r\nnot a part--xyz--\r\n",
    )
    unknown = session.get("/api/no-such-thing", headers=admin)
    method = session.delete("/api/overview", headers=admin)
    for response, status in ((broken, 400), (unknown, 404), (method, 405)):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json().keys() == {"error", "status"}
        assert response.json()["status"] == status
    assert method.headers["allow"] == "GET"
    page = session.get("/no-such-page", headers=admin | {"Accept": "text/html"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text


def test_events_are_described_as_json_objects(api: Any):
    """Each server-sent event's data is a JSON object; the description said a string."""
    session, headers = api
    response = session.get("/events", headers=headers["officer"], timeout=10)
    assert response.status_code == 200
    event = response.text.split("\n\n")[0].split("\n")
    assert event[0] == "event: data"
    data = json.loads(event[1].removeprefix("data: "))
    schema_of_data = DESCRIPTION["paths"]["/events"]["get"]["responses"]["200"]["content"]
    assert set(data) == set(schema_of_data["text/event-stream"]["schema"]["properties"])


def test_a_missing_or_mistyped_field_is_a_400_in_the_refusal_shape(app_client):
    """FastAPI's own 422 {"detail": [...]} would be a second error shape: a request whose
    fields are missing or of the wrong type is the same {"error", "status"} 400 as every other
    refusal, naming the field and never echoing the value sent."""
    from .conftest import csrf_headers, sign_in

    cookie = sign_in(app_client, "analyst")
    app_client.cookies.clear()
    headers = csrf_headers(app_client, cookie)
    missing = app_client.post("/api/justification", data={}, cookies=cookie, headers=headers)
    assert missing.status_code == 400
    body = missing.json()
    assert set(body) == {"error", "status"} and body["status"] == 400
    assert "purpose" in body["error"]
    typed = app_client.get("/api/records?page=SECRET-VALUE", cookies=cookie)
    assert typed.status_code == 400 and "SECRET-VALUE" not in typed.text
    app_client.cookies.clear()
