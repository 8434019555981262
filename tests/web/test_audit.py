"""The audit log in the web app: every data route writes an entry (enumerated from the route
table), cached pages too; justification before nominals and personal-data downloads;
sign-in/out; a failed write refuses the response; the chain holds under concurrent requests
and page views do not wait for an import; the auditor's page searches and summarises."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount

from placeharm import audit
from placeharm.config import load_settings
from placeharm.services import auth
from placeharm.store import AnyStore
from placeharm.web import audited, live
from placeharm.web.app import create_app

from .conftest import csrf_headers, origin, post_login, sign_in

WARD = "E05001111"
SITE = "DEMO-CHB1"
# who may open each route (the most restricted route needs its own role)
ROLE_FOR = {"/admin": "admin", "/api/admin": "admin", "/audit": "auditor", "/api/audit": "auditor"}


def _store(client: TestClient) -> AnyStore:
    return client.app.state.placeharm.store  # type: ignore[attr-defined,no-any-return]


def _latest(client: TestClient) -> dict[str, Any]:
    entries, _ = _store(client).audit_search(None, None, None, None, None, 1)
    row = entries.row(0, named=True)
    row["record_ids"] = json.loads(row["record_ids"])
    row["query"] = json.loads(row["query"])
    return row


def _get(client: TestClient, url: str, cookie: dict[str, str], html: bool = False) -> Any:
    client.cookies.clear()
    for name, value in cookie.items():
        client.cookies.set(name, value)
    headers = {"Accept": "text/html"} if html else {}
    return client.get(url, headers=headers, follow_redirects=False)


@pytest.fixture(scope="module")
def ids(app_client: TestClient) -> dict[str, str]:
    admin = sign_in(app_client, "admin")
    nominals = _get(app_client, "/api/records?kind=nominals&page_size=1000", admin).json()
    perpetrator = next(
        n["nominal_id"] for n in nominals["tables"]["records"] if n.get("cce_perpetrator")
    )
    group = _get(app_client, "/api/records?kind=groups", admin).json()
    crimes = _get(app_client, "/api/records?kind=crimes&q=Burglary&page_size=1", admin).json()
    return {
        "crime_id": crimes["tables"]["records"][0]["crime_id"],
        "code": WARD,
        "site": SITE,
        "nominal_id": perpetrator,
        "group_id": group["tables"]["records"][0]["group_id"],
    }


@pytest.mark.both_engines  # issue 17
def test_every_data_route_writes_an_entry(app_client: TestClient, ids: dict[str, str]):
    """Enumerated from the app's route table: a new route that serves data and is neither
    classified in web/audited.py nor exempt (with its reason) fails here."""
    cookies = {name: sign_in(app_client, name) for name in ("analyst", "admin", "auditor")}
    checked = 0
    for route in app_client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            assert route.path in audited.EXEMPT, f"mount {route.path} is neither audited nor exempt"
            continue
        assert isinstance(route, APIRoute), route
        if route.path in audited.EXEMPT:
            continue
        assert route.path in audited.ROUTES, f"{route.path} has no audit classification"
        assert route.methods == {"GET"}, f"{route.path}: only GETs are audited by route"
        spec = audited.ROUTES[route.path]
        params = re.findall(r"{(\w+)}", route.path)
        unknown = set(params) - set(ids)
        assert not unknown, f"{route.path}: the test has no value for {unknown}"
        url = route.path.format(**ids)
        url += "?kind=nominals" if "records" in route.path else ""
        url += "?lat=54.9783&lon=-1.6178&radius_m=400" if "radius" in route.path else ""
        who = ROLE_FOR.get(route.path, "analyst")
        before = _store(app_client).audit_head()
        response = _get(app_client, url, cookies[who], html=spec.fmt == "html")
        assert response.status_code == 200, (url, response.status_code, response.text[:200])
        entry = _latest(app_client)
        assert before is not None and entry["seq"] == before[0] + 1, url
        assert entry["route"] == route.path and entry["username"] == who, url
        assert (entry["action"], entry["page"], entry["format"]) == (
            spec.action,
            spec.page,
            spec.fmt,
        )
        assert entry["outcome"] == "ok" and entry["client_address"] == "testclient"
        for name in params:
            named = {value for values in entry["record_ids"].values() for value in values}
            assert ids[name] in named, (url, entry)
        if "records" in route.path:
            assert entry["query"]["kind"] == "nominals"
            assert entry["reason_code"] == "investigation"  # stated at sign-in (conftest)
        if "radius" in route.path:  # a search: justified, and what it showed is named
            assert entry["reason_code"] == "investigation"
            assert entry["query"]["lat"] == "54.9783" and entry["record_ids"].get("crimes")
        if spec.action == "disclosure":
            assert entry["row_count"] is not None and entry["marking"] == "OFFICIAL-SENSITIVE"
        checked += 1
    assert checked == len(audited.ROUTES)


@pytest.mark.both_engines  # issue 17
def test_a_cached_page_is_logged_every_time(app_client: TestClient):
    cookie = sign_in(app_client, "officer")
    seqs = []
    for _ in range(3):
        assert _get(app_client, f"/ward/{WARD}", cookie, html=True).status_code == 200
        entry = _latest(app_client)
        assert entry["username"] == "officer" and entry["record_ids"]["ward"][0] == WARD
        seqs.append(entry["seq"])
    assert len(set(seqs)) == 3


@pytest.mark.both_engines  # issue 17
def test_downloads_record_their_rows_and_what_they_named(
    app_client: TestClient, ids: dict[str, str]
):
    cookie = sign_in(app_client, "analyst")
    csv = _get(app_client, "/api/records.csv?kind=intelligence&from=2021-11&to=2022-03", cookie)
    entry = _latest(app_client)
    assert entry["action"] == "disclosure" and entry["format"] == "csv"
    assert entry["row_count"] == len(csv.text.strip().splitlines()) - 2  # marking and header
    assert len(entry["record_ids"]["intelligence"]) == entry["row_count"]
    assert entry["query"] == {"kind": "intelligence", "from": "2021-11", "to": "2022-03"}
    _get(app_client, f"/api/nominal/{ids['nominal_id']}", cookie)
    entry = _latest(app_client)
    shown = entry["record_ids"]
    assert shown["nominal"][0] == ids["nominal_id"]
    assert shown["exploitation_link"] and "intelligence" in shown
    summary = _get(app_client, f"/api/nominal/{ids['nominal_id']}", cookie).json()
    assert summary["nominal"]["surname"] not in json.dumps(entry, default=str)  # no names


@pytest.mark.both_engines  # issue 17
def test_a_refused_request_is_logged_as_refused(app_client: TestClient, ids: dict[str, str]):
    cookie = sign_in(app_client, "partner")
    assert _get(app_client, f"/api/nominal/{ids['nominal_id']}", cookie).status_code == 403
    entry = _latest(app_client)
    assert entry["username"] == "partner" and entry["outcome"] == "denied"
    assert entry["row_count"] is None


@pytest.mark.both_engines  # issue 17
def test_justification_is_required_then_accepted(app_client: TestClient, ids: dict[str, str]):
    cookie = sign_in(app_client, "analyst", justify=False)
    nominal = f"/nominal/{ids['nominal_id']}"
    api = _get(app_client, f"/api{nominal}", cookie)
    assert api.status_code == 428 and "POST /api/justification" in api.json()["error"]
    assert "tables" not in api.json()
    assert _latest(app_client)["outcome"] == "justification required"
    page = _get(app_client, nominal, cookie, html=True)
    assert page.status_code == 303
    assert (
        page.headers["location"]
        == f"/justification?purpose=nominal&next=%2Fnominal%2F{ids['nominal_id']}"
    )
    form = _get(app_client, page.headers["location"], cookie, html=True)
    assert form.status_code == 200 and '<form method="post" action="/justification"' in form.text
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found, "the justification form carries the CSRF token"
    submitted = {"csrf_token": found.group(1), "next": nominal}  # as the form sends them
    same_site = {"Origin": origin(app_client)}
    app_client.cookies.clear()
    bad = app_client.post(
        "/justification",
        data={"purpose": "nominal", "reason": "other", "text": "", **submitted},
        cookies=cookie,
        headers=same_site,
        follow_redirects=False,
    )
    assert bad.status_code == 303 and "error=" in bad.headers["location"]
    assert _get(app_client, f"/api{nominal}", cookie).status_code == 428
    app_client.cookies.clear()
    good = app_client.post(
        "/justification",
        data={"purpose": "nominal", "reason": "safeguarding", "text": "ref S-1", **submitted},
        cookies=cookie,
        headers=same_site,
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == nominal
    stated = _latest(app_client)
    assert stated["action"] == "justification" and stated["reason_text"] == "ref S-1"
    assert _get(app_client, nominal, cookie, html=True).status_code == 200
    entry = _latest(app_client)
    assert (entry["reason_code"], entry["reason_text"]) == ("safeguarding", "ref S-1")
    # a download naming people is another purpose: asked for separately
    export = _get(app_client, "/api/records.csv?kind=nominals", cookie)
    assert export.status_code == 428 and "purpose=export" in export.json()["error"]
    app_client.cookies.clear()
    headers = csrf_headers(app_client, cookie)  # as the page's script sends them
    app_client.cookies.clear()
    stated = app_client.post(
        "/api/justification",
        data={"purpose": "export", "reason": "tasking_and_briefing", "text": ""},
        cookies=cookie,
        headers=headers,
    )
    assert stated.status_code == 200
    assert _get(app_client, "/api/records.csv?kind=nominals", cookie).status_code == 200
    # crimes name nobody; a partner's intelligence carries no people columns
    assert _get(app_client, "/api/records.csv?kind=crimes", cookie).status_code == 200
    partner = sign_in(app_client, "partner", justify=False)
    assert _get(app_client, "/api/records.csv?kind=intelligence", partner).status_code == 200
    # another session of the same user has not stated it
    again = sign_in(app_client, "analyst", justify=False)
    assert _get(app_client, f"/api{nominal}", again).status_code == 428


@pytest.mark.both_engines  # issue 17
def test_sign_in_and_out_are_logged_without_the_password(app_client: TestClient):
    app_client.cookies.clear()
    refused = post_login(app_client, "analyst", "Not-The-Pass-42")
    assert refused.status_code == 303 and "error=1" in refused.headers["location"]
    failed = _latest(app_client)
    assert (failed["action"], failed["username"], failed["outcome"]) == (
        "sign-in",
        "analyst",
        "failed",
    )
    cookie = sign_in(app_client, "officer", justify=False)
    ok = _latest(app_client)
    assert (ok["action"], ok["username"], ok["outcome"], ok["role"]) == (
        "sign-in",
        "officer",
        "ok",
        "officer",
    )
    headers = csrf_headers(app_client, cookie)
    app_client.cookies.clear()
    app_client.post("/logout", cookies=cookie, headers=headers, follow_redirects=False)
    out = _latest(app_client)
    assert (out["action"], out["username"]) == ("sign-out", "officer")
    dump = _store(app_client)._run("SELECT * FROM audit_log")
    assert "Not-The-Pass-42" not in json.dumps(dump, default=str)


@pytest.fixture()
def own_client(own_demo: Callable[[], str]) -> Iterator[TestClient]:
    """An app on a fresh copy of the demo store: a log with no other test's entries."""
    with TestClient(create_app(load_settings(db=own_demo()))) as client:
        yield client


def test_a_log_that_cannot_be_written_refuses_the_response(
    own_client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    cookie = sign_in(own_client, "analyst")
    store = _store(own_client)

    def broken(entry: dict[str, Any]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "audit_append", broken)
    for url in ("/api/overview", f"/api/ward/{WARD}.csv", "/api/records?kind=intelligence"):
        response = _get(own_client, url, cookie)
        assert response.status_code == 503, url
        assert set(response.json()) == {"error", "status"}
        assert "audit log could not be written" in response.json()["error"]
    page = _get(own_client, f"/ward/{WARD}", cookie, html=True)
    assert page.status_code == 503 and "audit log could not be written" in page.text
    assert "page-data" not in page.text  # the error page, never the ward
    own_client.cookies.clear()
    signin = post_login(own_client, "analyst", f"analyst{auth.DEMO_PASSWORD_SUFFIX}")
    assert signin.status_code == 503 and "placeharm_session" not in signin.cookies
    monkeypatch.undo()
    assert audit.verify(store).ok


def test_the_chain_holds_under_concurrent_requests(own_client: TestClient):
    cookies = {name: sign_in(own_client, name) for name in ("analyst", "officer", "partner")}
    urls = ["/api/overview", f"/api/ward/{WARD}", "/api/records?kind=crimes", f"/ward/{WARD}"]
    statuses: list[int] = []
    before = _store(own_client).audit_head()
    assert before is not None

    def work(name: str) -> None:
        for url in urls * 3:
            response = own_client.get(url, cookies=cookies[name])
            statuses.append(response.status_code)

    threads = [threading.Thread(target=work, args=(n,)) for n in cookies for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses == [200] * 72
    report = audit.verify(_store(own_client))
    assert report.ok, report.problem
    assert report.head_seq == before[0] + 72


def test_a_page_view_does_not_wait_for_an_import(
    own_client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    analyst, admin = sign_in(own_client, "analyst"), sign_in(own_client, "admin")
    store = _store(own_client)
    real = live.import_entity
    importing = threading.Event()

    def slow_import(*args: Any, **kwargs: Any) -> Any:
        with store.transaction():  # the import's transaction is open for 3 s
            importing.set()
            time.sleep(3)
            return real(*args, **kwargs)

    monkeypatch.setattr(live, "import_entity", slow_import)
    result: list[Any] = []
    headers = csrf_headers(own_client, admin)  # as the admin page's script sends them

    def upload() -> None:
        own_client.cookies.clear()
        result.append(
            own_client.post(
                "/api/upload",
                cookies=admin,
                headers=headers,
                data={"kind": "groups"},
                files={"file": ("g.csv", b"group_id,group_type\nAUD-G1,OCG\n", "text/csv")},
            )
        )

    thread = threading.Thread(target=upload)
    thread.start()
    assert importing.wait(10)
    t0 = time.perf_counter()
    view = own_client.get(f"/api/ward/{WARD}", cookies=analyst)
    took = time.perf_counter() - t0
    assert view.status_code == 200
    assert thread.is_alive(), "the import finished first: the test proves nothing"
    assert took < 2.0, f"the page view waited {took:.1f} s for the import"
    thread.join(30)
    assert result[0].status_code == 200
    entries = store.audit_entries(0, 1_000_000)
    view_entry = next(e for e in reversed(entries) if e["route"] == "/api/ward/{code}")
    collected = entries[-1]
    assert collected["action"] == "collection" and collected["username"] == "admin"
    assert collected["seq"] > view_entry["seq"]
    assert store.imports(1)["imported_by"][0] == "admin"
    assert audit.verify(store).ok


def test_the_auditor_searches_the_log_and_sees_the_uptake(own_client: TestClient):
    officer = sign_in(own_client, "officer")
    for _ in range(2):
        _get(own_client, f"/ward/{WARD}", officer, html=True)
    _get(own_client, "/ward/E05001112", officer, html=True)
    auditor = sign_in(own_client, "auditor")
    assert _get(own_client, "/api/overview", auditor).status_code == 403
    found = _get(own_client, f"/api/audit?user=officer&record={WARD}", auditor).json()
    rows = found["tables"]["entries"]
    assert found["total"] == 2 and {r["username"] for r in rows} == {"officer"}
    assert all(WARD in r["record_ids"] for r in rows)
    usage = found["usage"]
    assert usage["wards_viewed"] == 2 and usage["users"] >= 1
    pages = {r["page"]: r["views"] for r in found["tables"]["pages"]}
    assert pages["ward"] == 3
    wards = {r["ward"]: r["views"] for r in found["tables"]["wards"]}
    assert wards == {WARD: 2, "E05001112": 1}
    assert re.fullmatch(r"\d{4}-W\d{2}", found["tables"]["weekly"][0]["week"])
    html = _get(own_client, "/audit?user=officer", auditor, html=True)
    assert html.status_code == 200 and "Use of the dashboard" in html.text
    bad = _get(own_client, "/api/audit?from=yesterday", auditor)
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.json()["error"]
    # the auditor's own searches are logged too
    assert _latest(own_client)["username"] == "auditor"


def test_roles_with_nothing_to_justify_are_refused_not_asked(app_client: TestClient):
    """A role that may not open nominals gets its 403 at once (no justification prompt), and
    cannot state a justification for a purpose it can never use: nothing of it is logged as
    a justification."""
    for who in ("leader", "partner", "auditor"):
        cookie = sign_in(app_client, who)
        nominal = _get(app_client, "/api/nominal/DEMO-N000001", cookie)
        assert nominal.status_code == 403, who
        app_client.cookies.clear()
        headers = csrf_headers(app_client, cookie)
        for purpose in ("nominal", "export", "radius"):
            stated = app_client.post(
                "/api/justification",
                data={"purpose": purpose, "reason": "investigation", "text": "x"},
                cookies=cookie,
                headers=headers,
            )
            assert stated.status_code == 403, (who, purpose)
        app_client.cookies.clear()
    officer = sign_in(app_client, "officer")
    app_client.cookies.clear()
    radius = app_client.post(
        "/api/justification",
        data={"purpose": "radius", "reason": "investigation", "text": "x"},
        cookies=officer,
        headers=csrf_headers(app_client, officer),
    )
    assert radius.status_code == 403  # officers may open nominals, not search places
    app_client.cookies.clear()
    entries, _ = _store(app_client).audit_search(None, None, None, None, "justification", 1000)
    assert not {"leader", "partner", "auditor"} & set(entries["username"].to_list())


def test_maps_and_rising_nominals_name_what_they_show(app_client: TestClient, ids: dict[str, str]):
    """The group and CHB maps' points and the prominence page's nominals (with the records
    that moved them) are in the audit entry of the request that showed them (issue 15, 16)."""
    cookie = sign_in(app_client, "analyst")
    group = _get(app_client, f"/api/group/{ids['group_id']}", cookie).json()
    entry = _latest(app_client)
    shown = {kind: set(values) for kind, values in entry["record_ids"].items()}
    points = [row for rows in group["map"]["points"].values() for row in rows]
    refs = {row["crime_ref"] for row in points if row.get("crime_ref")}
    homes = {row["nominal_id"] for row in points if row.get("nominal_id")}
    assert refs and refs <= shown["force_crime"]
    assert homes and homes <= shown["nominal"]
    rising = _get(app_client, "/api/prominence", cookie).json()
    entry = _latest(app_client)
    shown = {kind: set(values) for kind, values in entry["record_ids"].items()}
    listed = {row["nominal_id"] for row in rising["nominals"]}
    assert listed and listed <= shown["nominal"]
    why = {(w["kind"], w["ref"]) for row in rising["nominals"] for w in row["why"]}
    assert {ref for kind, ref in why if kind == "intelligence"} <= shown["intelligence"]
    assert {ref for kind, ref in why if kind == "crime"} <= shown.get("force_crime", set())
