"""Findings of the security review, kept fixed: see docs/web.md."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from placeharm import open_store
from placeharm.config import load_settings
from placeharm.errors import TooManyAttempts
from placeharm.services import auth
from placeharm.soc.importer import import_entity
from placeharm.web.app import create_app

from .conftest import csrf_headers, post_login, sign_in


def _as(client: TestClient, who: str) -> TestClient:
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client


def test_partner_totals_count_only_shareable_records(app_client: TestClient):
    client = _as(app_client, "partner")
    for kind in ("intelligence", "partner_events"):
        body = client.get(f"/api/records?kind={kind}&page_size=1000").json()
        rows = body["tables"]["records"]
        assert body["total"] == len(rows) or body["total"] > 1000, kind
        assert {r["handling_code"] for r in rows} <= {"P"}, kind
    deaths = client.get("/api/records?kind=partner_events&q=drug_related_death").json()
    assert deaths["total"] == len(deaths["tables"]["records"])  # coroner's C rows not counted
    search = client.get("/api/records?kind=intelligence&q=firearms&page_size=1000").json()
    assert search["total"] == len(search["tables"]["records"])
    assert all("firearms" in r["topics"] for r in search["tables"]["records"])


def test_partner_cannot_narrow_below_wards_or_sort_by_coordinates(app_client: TestClient):
    client = _as(app_client, "partner")
    assert client.get("/api/overview?by=lsoa").status_code == 403
    assert client.get("/api/ward/E01008837?by=lsoa").status_code == 403
    lsoa = client.get("/api/records?kind=intelligence&by=lsoa&area=E01008837")
    assert lsoa.status_code == 403
    assert client.get("/api/records?kind=intelligence&sort=latitude").status_code == 400


def test_roles_without_nominals_see_no_person_columns(app_client: TestClient):
    client = _as(app_client, "leader")
    for kind in ("intelligence", "disruptions"):
        text = client.get(f"/api/records?kind={kind}&page_size=1000").text
        assert "DEMO-N" not in text, kind


def test_exploitation_only_nominals_are_invisible_to_uncleared_roles(app_client: TestClient):
    analyst = _as(app_client, "analyst")
    every = analyst.get("/api/records?kind=nominals&page_size=1000&sort=date_of_birth").json()
    victims = [
        r["nominal_id"]
        for r in every["tables"]["records"]
        if (r["cce_victim"] or r["cse_victim"])
        and not (r["ocg_member"] or r["ucg_member"] or r["pcg_member"])
    ]
    assert victims
    officer = _as(app_client, "officer")
    listed = officer.get("/api/records?kind=nominals&page_size=1000&sort=date_of_birth").json()
    ids = {r["nominal_id"] for r in listed["tables"]["records"]}
    assert not ids & set(victims)
    assert officer.get(f"/api/nominal/{victims[0]}").status_code == 404
    intel = officer.get("/api/records?kind=intelligence&page_size=1000").text
    assert not any(v in intel for v in victims)


def test_headers_cache_and_csp(app_client: TestClient):
    client = _as(app_client, "analyst")
    page = client.get("/overview", headers={"Accept": "text/html"})
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.get("/api/overview.csv").headers["cache-control"] == "no-store"
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline handlers (CSP forbids them)
    client.cookies.clear()
    assert client.get("/api/openapi.json").status_code == 403
    assert client.get("/api/docs").status_code == 404  # Swagger UI would load from a CDN


def test_csv_cells_cannot_become_formulas(app_client: TestClient):
    admin = _as(app_client, "admin")
    upload = admin.post(
        "/api/upload",
        headers=csrf_headers(admin),
        data={"kind": "groups"},
        files={
            "file": (
                "g.csv",
                b"group_id,group_type,name,synthetic\nSEC-G1,OCG,=HYPERLINK(1),true\n",
            )
        },
    )
    assert upload.status_code == 200
    text = admin.get("/api/records.csv?kind=groups&q=HYPERLINK").text
    rows = list(csv.reader(io.StringIO(text.split("\n", 1)[1])))
    assert rows[1][1] == "'=HYPERLINK(1)"


def test_upload_names_cannot_escape_and_json_in_pages_is_inert(app_client: TestClient):
    admin = _as(app_client, "admin")
    result = admin.post(
        "/api/upload",
        headers=csrf_headers(admin),
        data={"kind": "groups"},
        files={
            "file": (
                "../../<img src=x onerror=alert(1)>.csv",
                b"group_id,group_type,synthetic,name\nSEC-G2,OCG,true,</script><script>alert(2)</script>\n",
            )
        },
    )
    assert result.status_code == 200
    assert result.json()["results"][0]["file"] == "<img src=x onerror=alert(1)>.csv"
    page = admin.get("/records?kind=groups&q=SEC-G2", headers={"Accept": "text/html"}).text
    data = page[page.index('id="page-data">') :]
    data = data[: data.index("</script>")]
    assert "<" not in data.removeprefix('id="page-data">')  # JSON carries no '<' at all


def test_demo_sign_ins_are_refused_on_a_store_with_real_records(
    tmp_path: Path, own_demo: Callable[[], str]
):
    db = own_demo()
    real = tmp_path / "nominals.csv"
    real.write_text("nominal_id,surname\nREAL-1,Realperson\n")
    with open_store(db) as store:
        assert import_entity(store, "nominals", real).inserted == 1
        auth.create_user(store, "pc9", "PC", "officer", "kettle-lantern-moorland")
    with TestClient(create_app(load_settings(db=db))) as client:
        demo = post_login(client, "admin", "admin" + auth.DEMO_PASSWORD_SUFFIX)
        assert "error=1" in demo.headers["location"]
        real_user = post_login(client, "pc9", "kettle-lantern-moorland")
        assert real_user.headers["location"] == "/overview"


def test_repeated_failed_sign_ins_are_throttled(app_client: TestClient):
    # its own client address, so the shared client's address is not paused for other tests
    attacker = TestClient(app_client.app, client=("192.0.2.50", 50000))
    for _ in range(5):
        post_login(attacker, "supervisor", "wrong")
    right = post_login(attacker, "supervisor", "supervisor" + auth.DEMO_PASSWORD_SUFFIX)
    assert right.status_code == 429  # paused, even with the password
    assert right.json()["error"] == "too many sign-in attempts: try again in 1 minute"
    assert right.headers["retry-after"] == "60"
    assert "placeharm_session" not in right.cookies
    app_client.cookies.clear()
    assert sign_in(app_client, "supervisor")  # the user is not locked out from elsewhere


def test_records_links_keep_the_selection(app_client: TestClient):
    client = _as(app_client, "analyst")
    html = client.get(
        "/records?kind=intelligence&q=firearms&from=2021-12&to=2022-02&desc=false",
        headers={"Accept": "text/html"},
    ).text
    links = re.findall(r'href="(/(?:api/)?records[^"]*)"', html)
    export = next(link for link in links if link.startswith("/api/records.csv"))
    for part in ("q=firearms", "from=2021-12", "to=2022-02", "desc=false", "kind=intelligence"):
        assert part in export, (part, export)
    many = client.get(
        "/records?kind=intelligence&from=2021-11&to=2022-03&desc=false",
        headers={"Accept": "text/html"},
    ).text
    pager = [link for link in re.findall(r'href="(/records[^"]*)"', many) if "page=2" in link]
    assert pager and all("from=2021-11" in link and "desc=false" in link for link in pager)


def test_an_unreadable_csv_is_refused_whole(app_client: TestClient):
    admin = _as(app_client, "admin")
    huge = b"group_id,group_type,name\nBIG-1,OCG," + b"x" * 200_000 + b"\nBIG-2,OCG,ok\n"
    response = admin.post(
        "/api/upload",
        headers=csrf_headers(admin),
        data={"kind": "groups"},
        files={"file": ("big.csv", huge)},
    )
    assert response.status_code == 400 and "nothing imported" in response.json()["error"]
    listed = admin.get("/api/records?kind=groups&q=BIG-").json()
    assert listed["total"] == 0


def test_secure_cookie_setting_and_expired_sessions_purged(own_demo: Callable[[], str]):
    """Behind TLS the session cookie carries Secure; expired sessions do not pile up."""
    db = own_demo()
    with open_store(db) as store:
        store.add_session("old", "analyst", dt.datetime(2020, 1, 1))
    form = {"username": "analyst", "password": f"analyst{auth.DEMO_PASSWORD_SUFFIX}"}
    for secure in (True, False):
        app = create_app(load_settings(db=db, secure_cookie=secure))
        with TestClient(app, base_url="https://testserver") as client:
            response = post_login(client, form["username"], form["password"])
            cookie = response.headers["set-cookie"]
            assert ("; secure" in cookie.lower()) is secure, cookie
            store = app.state.placeharm.store
            assert store.session_user("old", dt.datetime(2019, 1, 1)) is None  # purged


def test_login_throttle_memory_is_bounded_and_keeps_a_live_lock_out():
    clock = [1000.0]
    throttle = auth.LoginThrottle(per_account=2, window_s=60.0, max_keys=6, clock=lambda: clock[0])
    throttle.failed("target", "10.0.0.1")
    throttle.failed("target", "10.0.0.1")  # locked for a minute
    for i in range(20):  # made-up names from other addresses: two tallies each
        throttle.failed(f"name{i}", f"10.0.1.{i}")
    assert len(throttle) <= 6
    with pytest.raises(TooManyAttempts):
        throttle.check("target", "10.0.0.1")  # spared: its lock-out is live
    throttle.check("name0", "10.0.1.0")  # forgotten, and not blocked
