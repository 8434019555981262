"""Issue 12: /api/openapi.json lists every parameter of every API route and its refusals."""

from __future__ import annotations

import inspect

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

import placeharm.web.app as web_app

from .conftest import sign_in

FILTERS = {"by": "string", "from": "string", "to": "string", "index": "string"}
REPEATED = {"measures", "types"}
EXPECTED = {
    "/api/overview": set(FILTERS) | REPEATED,
    "/api/overview.csv": set(FILTERS) | REPEATED,
    "/api/overview.geojson": set(FILTERS) | REPEATED,
    "/api/overview.gpkg": set(FILTERS) | REPEATED,
    "/api/ward/{code}": {"code"} | set(FILTERS) | REPEATED,
    "/api/ward/{code}.csv": {"code"} | set(FILTERS) | REPEATED,
    "/api/ward/{code}.geojson": {"code"} | set(FILTERS) | REPEATED,
    "/api/ward/{code}.gpkg": {"code"} | set(FILTERS) | REPEATED,
    "/api/records": {"kind", "q", "sort", "desc", "page", "page_size", "area"}
    | set(FILTERS)
    | REPEATED,
    "/api/records.csv": {"kind", "q", "sort", "desc", "area"} | set(FILTERS) | REPEATED,
    "/api/chb/{site}": {"site", "buffer_m", "control", "buffer_control"},  # issue 16
    "/api/disruptions": {"months"},  # issue 16
    "/api/nominal/{nominal_id}": {"nominal_id"},
    "/api/crime/{crime_id}/history": {"crime_id"},
    "/api/group/{group_id}": {"group_id"},
    "/api/admin": set(),
    "/api/radius": {"lat", "lon", "address_id", "address", "radius_m", "kinds", "from", "to"},
    "/api/mopi": set(),
    "/api/mopi.csv": set(),
    "/api/audit": {"user", "record", "from", "to", "action", "page"},
}


def _spec(client: TestClient) -> dict:
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, "analyst")["placeharm_session"])
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_every_api_route_lists_every_parameter(app_client: TestClient):
    spec = _spec(app_client)
    routes = {
        r.path
        for r in app_client.app.routes  # type: ignore[attr-defined]
        if isinstance(r, APIRoute)
        and r.include_in_schema
        and r.path.startswith("/api/")
        and "GET" in r.methods
    }
    assert routes == set(EXPECTED), "a new API route: add its parameters to EXPECTED"
    for path, names in EXPECTED.items():
        parameters = spec["paths"][path]["get"].get("parameters", [])
        listed = {p["name"]: p for p in parameters}
        assert set(listed) == names, path
        for name in REPEATED & names:
            schema = listed[name]["schema"]
            assert listed[name]["in"] == "query"
            assert schema["type"] == "array" and schema["items"]["type"] == "string", path
        if "from" in names:
            assert listed["from"]["in"] == "query"
            assert "YYYY-MM" in listed["from"]["description"]
    # nothing is read behind OpenAPI's back: a parameter taken from request.query_params
    # would be missing from the description (how from, measures and types went missing)
    assert "query_params" not in inspect.getsource(web_app)


def test_api_routes_declare_their_refusals(app_client: TestClient):
    spec = _spec(app_client)
    for path in EXPECTED:
        responses = spec["paths"][path]["get"]["responses"]
        for status in ("400", "403", "404"):
            body = responses[status]["content"]["application/json"]["schema"]
            assert set(body["required"]) == {"error", "status"}, (path, status)
            assert body["properties"]["error"]["type"] == "string"
            assert body["properties"]["status"]["type"] == "integer"
            assert body.get("additionalProperties") is False
    # and the refusals have that shape
    client = app_client
    client.cookies.clear()
    assert client.get("/api/overview").json() == {"error": "sign in first", "status": 403}
    client.cookies.set("placeharm_session", sign_in(client, "partner")["placeharm_session"])
    for url, status in (
        ("/api/overview?index=/etc/passwd", 400),
        ("/api/records?kind=nominals", 403),
        ("/api/nominal/NOPE", 403),
        ("/api/ward/NOPE", 404),
    ):
        response = client.get(url)
        assert response.status_code == status, url
        assert set(response.json()) == {"error", "status"}
        assert response.json()["status"] == status


def test_declared_parameters_parse_as_before(app_client: TestClient):
    """`from` by its alias; measures and types repeated or comma-separated alike."""
    client = app_client
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, "analyst")["placeharm_session"])
    repeated = client.get(
        "/api/overview?from=2022-01&to=2022-02&measures=drug_supply&measures=ocg_crimes"
        "&types=Drugs&types=Robbery"
    ).json()
    joined = client.get(
        "/api/overview?from=2022-01&to=2022-02&measures=ocg_crimes,drug_supply&types=Robbery,Drugs"
    ).json()
    assert repeated["period"] == {"from": "2022-01", "to": "2022-02"}
    assert repeated["filters"] == joined["filters"]
    assert repeated["filters"]["measures"] == "ocg_crimes,drug_supply"
    assert repeated["filters"]["types"] == "Drugs,Robbery"
    assert repeated["tables"] == joined["tables"]
