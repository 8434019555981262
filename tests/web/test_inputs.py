"""Issue 12: every parameter of every route, tried as an attacker would (docs/security/inputs.md).

No request value names a file, no refusal echoes server content, no value makes a 500.
"""

from __future__ import annotations

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from placeharm.services import sso
from placeharm.web.app import _safe_next

from .conftest import login_token, origin, sign_in
from .opens import OPENS

HOSTILE = (
    "/etc/passwd",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "file:///etc/passwd",
    "%00",
    "' OR 1=1 --",
    '"; DROP TABLE users; --',
    "<script>alert(1)</script>",
    "0000-01",
    "-1",
    "99999999999999999999",
    "x" * 2000,
)
SKIP = {"/events"}  # a stream that stays open; it takes no parameters


def _params(dependant: Dependant, kind: str) -> list[str]:
    """A route's path or query parameter names, its dependencies' included (page_filters)."""
    names = [p.alias for p in getattr(dependant, kind)]
    for sub in dependant.dependencies:
        names += [n for n in _params(sub, kind) if n not in names]
    return names


def _get_routes(app_client: TestClient) -> list[APIRoute]:
    return [
        r
        for r in app_client.app.routes  # type: ignore[attr-defined]
        if isinstance(r, APIRoute) and "GET" in r.methods and r.path not in SKIP
    ]


@pytest.mark.parametrize("role", ["admin", "partner"])
def test_every_parameter_of_every_route_resists_hostile_values(app_client: TestClient, role):
    client = app_client
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, role)["placeharm_session"])
    tried = 0
    with OPENS.watching() as opened:
        for route in _get_routes(app_client):
            path_names = _params(route.dependant, "path_params")
            query_names = _params(route.dependant, "query_params")
            for value in HOSTILE:
                path = route.path
                for name in path_names:
                    path = path.replace(f"{{{name}}}", value.replace("/", "%2F"))
                targets = [(path, {})]
                if not path_names:
                    targets = []
                for name in query_names:
                    base = route.path
                    for other in path_names:
                        base = base.replace(f"{{{other}}}", "E05001111")
                    targets.append((base, {name: value}))
                for url, params in targets:
                    response = client.get(url, params=params, follow_redirects=False)
                    tried += 1
                    assert response.status_code < 500, (url, params)
                    assert "root:" not in response.text, (url, params)
                    assert "Binder Error" not in response.text, (url, params)
                    assert "Traceback" not in response.text, (url, params)
    assert tried > 500
    assert not [p for p in opened if "passwd" in p or "win.ini" in p], opened


def test_months_out_of_range_are_a_400_not_a_500(app_client: TestClient):
    client = app_client
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, "analyst")["placeharm_session"])
    for value in ("0000-01", "0001-01", "1899-12", "2200-01", "9999-13"):
        for name in ("from", "to"):
            response = client.get("/api/overview", params={name: value})
            assert response.status_code == 400, (name, value)
            assert "between 1900-01 and 2199-12" in response.json()["error"]
    assert client.get("/api/overview", params={"from": "1900-01"}).status_code == 200


def test_records_area_filter_on_an_unknown_area_set_is_a_404(app_client: TestClient):
    client = app_client
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, "analyst")["placeharm_session"])
    response = client.get("/api/records", params={"area": "E05001111", "by": "nope"})
    assert response.status_code == 404  # was a 500 from the store (a missing column)
    assert response.json() == {"error": "no area set called 'nope'", "status": 404}
    assert client.get("/api/records", params={"area": "X", "by": "ward"}).status_code == 200


def test_page_and_page_size_are_bounded(app_client: TestClient):
    client = app_client
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, "analyst")["placeharm_session"])
    assert client.get("/api/records", params={"page_size": 1000}).status_code == 200
    for params in ({"page_size": 1001}, {"page_size": 0}, {"page": 0}, {"page": 1_000_001}):
        response = client.get("/api/records", params=params)
        assert response.status_code == 400, params
        assert response.json()["error"] == "page is 1 to 1,000,000; page_size is 1 to 1000"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ward/E05001111?from=2022-01", "/ward/E05001111?from=2022-01"),
        ("/overview", "/overview"),
        ("//evil.example", "/overview"),
        ("/\\evil.example", "/overview"),
        ("/\\/evil.example", "/overview"),
        ("/\t/evil.example", "/overview"),
        ("/\n/evil.example", "/overview"),
        ("https://evil.example/", "/overview"),
        ("javascript:alert(1)", "/overview"),
        ("", "/overview"),
        ("/" + "a" * 3000, "/overview"),
        ("/ /evil.example", "/overview"),  # a space
        ("/\x7f/evil.example", "/overview"),  # DEL
        ("/\x85/evil.example", "/overview"),  # a C1 control (next line)
        ("/\u2028/evil.example", "/overview"),  # a line separator
        ("/\u202e/evil.example", "/overview"),  # a bidi override
    ],
)
def test_sign_in_returns_only_to_a_path_on_this_site(
    app_client: TestClient, target: str, expected: str
):
    # the same check after a local sign-in and a single sign-on (services/sso.safe_next)
    assert _safe_next(target) == sso.safe_next(target) == expected
    client = app_client
    client.cookies.clear()
    response = client.post(
        "/login",
        data={
            "username": "analyst",
            "password": "analyst-demo-2026",
            "next": target,
            "csrf_token": login_token(client),  # the sign-in form's, as a browser sends it
        },
        headers={"Origin": origin(client)},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == expected


@pytest.mark.both_engines  # issue 17: PostgreSQL text cannot hold NUL; DuckDB's can
def test_a_nul_character_in_a_value_is_bad_input_on_either_engine(app_client: TestClient):
    cookie = sign_in(app_client, "analyst")
    for url in ("/api/crime/%00/history", "/api/records?kind=crimes&q=a%00b", "/crime/%00"):
        app_client.cookies.clear()
        response = app_client.get(url, cookies=cookie)
        # found nothing (DuckDB's text may hold NUL) or refused as bad input (PostgreSQL's
        # may not): never a server error
        assert response.status_code in (200, 400, 404), (url, response.status_code)
        assert "Traceback" not in response.text and "psycopg" not in response.text
