"""Every route x every role: what the policy allows, and a 403 (never a leak) otherwise.
HTML and its JSON twin come from the same builder and agree."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest
from fastapi.testclient import TestClient

from placeharm.services import policy
from placeharm.services.policy import Role

from .conftest import ROLES, csrf_headers, post_login, sign_in

# issue 17: on DuckDB and on PostgreSQL (the demo store moved by migrate-store)
pytestmark = pytest.mark.both_engines

ROLE_OF = {
    "officer": Role.officer,
    "analyst": Role.analyst,
    "supervisor": Role.supervisor,
    "leader": Role.senior_leader,
    "partner": Role.partner,
    "admin": Role.admin,
    "auditor": Role.auditor,
}
WARD = "E05001111"


@pytest.fixture(scope="module")
def cookies(app_client: TestClient) -> dict[str, dict[str, str]]:
    return {name: sign_in(app_client, name) for name in ROLES}


def _get(client: TestClient, url: str, cookie: dict[str, str] | None, html: bool = False) -> object:
    client.cookies.clear()
    for name, value in (cookie or {}).items():
        client.cookies.set(name, value)
    headers = {"Accept": "text/html"} if html else {}
    return client.get(url, headers=headers, follow_redirects=False)


def test_signed_out_is_refused(app_client: TestClient):
    assert _get(app_client, "/api/overview", None).status_code == 403
    page = _get(app_client, "/overview", None, html=True)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    wrong = post_login(app_client, "analyst", "nope")
    assert wrong.status_code == 303 and "error=1" in wrong.headers["location"]
    assert "placeharm_session" not in wrong.cookies


def _ids(app_client: TestClient, cookie: dict[str, str]) -> tuple[str, str]:
    data = _get(app_client, "/api/records?kind=nominals&q=Demo", cookie).json()
    group = _get(app_client, "/api/records?kind=groups", cookie).json()
    return data["tables"]["records"][0]["nominal_id"], group["tables"]["records"][0]["group_id"]


@pytest.mark.parametrize("name", ROLES)
def test_route_matrix(app_client: TestClient, cookies, name: str):
    role = ROLE_OF[name]
    user = policy.User(name, name, role)
    cookie = cookies[name]
    nominal_id, group_id = _ids(app_client, cookies["admin"])
    data = policy.allowed(user, "overview")  # every role but the auditor
    expected = {
        "/api/overview": data,
        f"/api/ward/{WARD}": data,
        "/api/chb/DEMO-CHB1": data,
        f"/api/nominal/{nominal_id}": policy.allowed(user, "nominal"),
        f"/api/group/{group_id}": policy.allowed(user, "group"),
        "/api/admin": policy.allowed(user, "admin"),
        "/api/audit": policy.allowed(user, "audit"),
        "/api/overview.csv": data,
        f"/api/ward/{WARD}.csv": data,
        "/api/overview.geojson": data,
        "/api/overview.gpkg": data,
        f"/api/ward/{WARD}.geojson": data,
        f"/api/ward/{WARD}.gpkg": data,
        "/api/overview.gpkg?by=lsoa": data and role is not Role.partner,
    }
    for kind in (
        "crimes",
        "force_crimes",
        "intelligence",
        "incidents",
        "disruptions",
        "partner_events",
        "nominals",
        "groups",
    ):
        allowed = kind in policy.record_kinds(user)
        expected[f"/api/records?kind={kind}"] = allowed
        expected[f"/api/records.csv?kind={kind}"] = allowed
    for url, allowed in expected.items():
        response = _get(app_client, url, cookie)
        assert response.status_code == (200 if allowed else 403), (name, url, response.text)
        if not allowed:
            assert set(response.json()) == {"error", "status"}  # nothing but the refusal
    for url in (
        "/overview",
        f"/ward/{WARD}",
        "/chb/DEMO-CHB1",
        f"/nominal/{nominal_id}",
        "/admin",
        "/audit",
        "/help",
        "/records?kind=nominals",
    ):
        api = (
            url.replace("/overview", "/api/overview")
            .replace("/ward/", "/api/ward/")
            .replace("/chb/", "/api/chb/")
            .replace("/nominal/", "/api/nominal/")
            .replace("/admin", "/api/admin")
            .replace("/audit", "/api/audit")
            .replace("/records", "/api/records")
        )
        html = _get(app_client, url, cookie, html=True)
        if url == "/help":
            assert html.status_code == 200
            continue
        assert html.status_code == _get(app_client, api, cookie).status_code, (name, url)
        assert "OFFICIAL-SENSITIVE" in html.text
    assert ("/audit" in _get(app_client, "/help", cookie, html=True).text) is (role is Role.auditor)


def test_upload_is_admin_only(app_client: TestClient, cookies):
    for name in ROLES:
        app_client.cookies.clear()
        response = app_client.post(
            "/api/upload",
            cookies=cookies[name],
            headers=csrf_headers(app_client, cookies[name]),
            data={"kind": "groups"},
            files={
                "file": (
                    "groups.csv",
                    b"group_id,group_type,synthetic\nWEB-G1,OCG,true\n",
                    "text/csv",
                )
            },
        )
        assert response.status_code == (200 if name == "admin" else 403), name
        if name == "admin":
            assert response.json()["results"][0]["inserted"] == 1


def test_partner_sees_only_shareable_generalised_records(app_client: TestClient, cookies):
    cookie = cookies["partner"]
    intel = _get(app_client, "/api/records?kind=intelligence&page_size=1000", cookie).json()
    rows = intel["tables"]["records"]
    assert rows and {r["handling_code"] for r in rows} == {"P"}
    assert not {"subjects", "summary"} & set(rows[0])
    assert all(round(r["latitude"], 2) == r["latitude"] for r in rows if r["latitude"])
    text = _get(app_client, "/api/records.csv?kind=intelligence", cookie).text
    exported = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))
    assert exported and {r["handling_code"] for r in exported} == {"P"}
    assert "subjects" not in exported[0] and "summary" not in exported[0]
    ward = _get(app_client, f"/api/ward/{WARD}", cookie).json()
    assert "groups" not in ward["tables"] and "nominals" not in ward["tables"]
    assert {p["handling_code"] for p in ward["points"]["intelligence"]} <= {"P"}
    assert "incidents" not in ward["points"]
    assert all(i["grading"].endswith("P") for i in ward["tables"]["latest_intelligence"])
    assert "DEMO-N" not in json.dumps(ward)


def test_exploitation_data_only_for_cleared_roles(app_client: TestClient, cookies):
    nominals = _get(
        app_client, "/api/records?kind=nominals&page_size=1000", cookies["analyst"]
    ).json()["tables"]["records"]
    perpetrator = next(n["nominal_id"] for n in nominals if n.get("cce_perpetrator"))
    for name in ("analyst", "supervisor", "admin"):
        page = _get(app_client, f"/api/nominal/{perpetrator}", cookies[name]).json()
        assert page["nominal"]["cce_perpetrator"] is True
        assert "exploitation" in {link["link_type"] for link in page["tables"]["links"]}
    officer = _get(app_client, f"/api/nominal/{perpetrator}", cookies["officer"])
    body = officer.json()
    assert officer.status_code == 200
    assert not {"cce_perpetrator", "cce_victim", "cse_perpetrator", "cse_victim"} & set(
        body["nominal"]
    )
    assert "exploitation" not in {link["link_type"] for link in body["tables"]["links"]}
    csv_text = _get(app_client, "/api/records.csv?kind=nominals", cookies["officer"]).text
    assert "cce_" not in csv_text and "cse_" not in csv_text
    ward = _get(app_client, f"/api/ward/{WARD}", cookies["officer"]).json()
    assert "cce_victim" not in json.dumps(ward)


def _same(a: object, b: object) -> bool:
    """Equal, with floats equal to 1e-9 relative (parallel sums may differ in the last bits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def test_html_and_json_agree(app_client: TestClient, cookies):
    cookie = cookies["analyst"]
    api = _get(app_client, "/api/overview?from=2021-11&to=2022-03", cookie).json()
    html = _get(app_client, "/overview?from=2021-11&to=2022-03", cookie, html=True).text
    embedded = re.search(
        r'<script type="application/json" id="page-data">(.*?)</script>', html, re.S
    )
    assert embedded is not None
    twin = json.loads(embedded.group(1).replace("<\\/", "</"))
    assert _same(twin, api)
    table = html[html.index('id="ranking"') :]
    for row in api["tables"]["areas"][:10]:
        assert row["area_name"].replace("'", "&#39;") in table
    csv_rows = list(
        csv.reader(
            io.StringIO(_get(app_client, "/api/overview.csv?from=2021-11&to=2022-03", cookie).text)
        )
    )
    assert csv_rows[0] == ["# OFFICIAL-SENSITIVE"]
    assert [r[2] for r in csv_rows[2:12]] == [r["area_name"] for r in api["tables"]["areas"][:10]]
    geo = _get(app_client, "/api/overview.geojson?from=2021-11&to=2022-03", cookie).json()
    assert len(geo["features"]) == 177
    assert geo["features"][0]["properties"]["soc_harm"] is not None


def test_filters_live_in_the_url(app_client: TestClient, cookies):
    cookie = cookies["analyst"]
    a = _get(app_client, "/api/overview?from=2021-11&to=2021-12", cookie).json()
    b = _get(app_client, "/api/overview?from=2022-02&to=2022-03&index=cchi", cookie).json()
    assert a["filters"] == {"by": "ward", "from": "2021-11", "to": "2021-12", "index": "css"}
    assert b["index"]["name"] == "cchi" and a["tables"] != b["tables"]
    bad = _get(app_client, "/api/overview?from=2021-13", cookie)
    assert bad.status_code == 400 and "not valid" in bad.json()["error"]


def test_vendor_assets_are_served_locally(app_client: TestClient, cookies):
    for name in ("maplibre-gl.js", "maplibre-gl.css", "plotly.min.js"):
        response = _get(app_client, f"/vendor/{name}", None)
        assert response.status_code == 200 and len(response.content) > 10_000
    html = _get(app_client, "/overview", cookies["analyst"], html=True).text
    assert not re.search(r'(src|href)="https?://', html)
