"""The overview as a dashboard (issue 15): the cross-filter lives in the URL (?area=CODE),
renders without JavaScript, and the JSON twin carries the same cards and outcome rates."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from placeharm.services import policy
from placeharm.services.policy import Role, User

from .conftest import sign_in

# issue 17: on DuckDB and on PostgreSQL (the demo store moved by migrate-store)
pytestmark = pytest.mark.both_engines


def _leader(client: TestClient) -> dict[str, str]:
    return sign_in(client, "leader", justify=False)


def test_cross_filter_url_state_and_json_twin(app_client: TestClient) -> None:
    cookie = _leader(app_client)
    whole = app_client.get("/api/overview", cookies=cookie).json()
    board = whole["dashboard"]
    assert board["focus"] is None
    top = board["top_areas"][0]
    code, name = top["area_code"], top["area_name"]
    areas = {r["area_code"]: r for r in whole["tables"]["areas"]}
    # the force card is the table summed
    total = sum(r["soc_harm"] for r in areas.values() if r["soc_harm"] is not None)
    assert abs(board["cards"]["harm"]["value"] - total) < 1e-3

    page = app_client.get(f"/overview?area={code}", cookies=cookie)
    assert page.status_code == 200
    html = page.text
    assert f"Filtered to: <strong>{name}</strong>" in html
    # clearable: a plain link back to the unfiltered overview, keeping the other filters
    clear = re.search(r'<a class="button-link" href="([^"]+)" data-area="">Clear filter', html)
    assert clear and "area=" not in clear.group(1) and "by=ward" in clear.group(1)
    assert re.search(rf'<tr aria-current="true" data-code="{code}">', html)

    twin = app_client.get(f"/api/overview?area={code}", cookies=cookie).json()
    focus = twin["dashboard"]
    assert focus["focus"] == {"area_code": code, "area_name": name}
    assert focus["cards"]["harm"]["value"] == areas[code]["soc_harm"]
    assert focus["cards"]["risk"]["level"] == areas[code]["risk"]
    assert twin["outcomes"]["area_code"] == code
    assert twin["outcomes"]["police_uk"]["crimes"] < whole["outcomes"]["police_uk"]["crimes"]
    # the HTML shows the twin's figures
    assert f"{focus['cards']['harm']['value']:,.1f}" in html
    assert twin["tables"]["areas"] == whole["tables"]["areas"]  # the table stays whole


def test_unknown_area_is_a_message(app_client: TestClient) -> None:
    cookie = _leader(app_client)
    got = app_client.get("/api/overview?area=NOPE", cookies=cookie)
    assert got.status_code == 404
    assert "clear the filter" in got.json()["error"]


def test_sector_set_offered_and_ward_outcomes(app_client: TestClient) -> None:
    cookie = _leader(app_client)
    html = app_client.get("/overview?by=sector", cookies=cookie).text
    assert '<option value="sector" selected>' in html
    assert "Newcastle upon Tyne North West" in html
    ward = app_client.get("/api/ward/E05001111", cookies=cookie).json()
    assert ward["outcomes"]["area_code"] == "E05001111"
    assert "Outcome rates" in app_client.get("/ward/E05001111", cookies=cookie).text


def test_partner_dashboard_follows_the_policy(app_client: TestClient) -> None:
    cookie = sign_in(app_client, "partner", justify=False)
    board = app_client.get("/api/overview", cookies=cookie).json()["dashboard"]
    assert board["area_sets"] == ["ward"]  # partners see figures by ward only
    partner = User("partner", "Partner", Role.partner)
    assert (board["cards"]["chb"] is not None) == policy.allowed(partner, "chb")
