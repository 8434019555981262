"""Truthful figures (issue 15) on the demo store's pages and JSON twins: risk levels, the
default period, an empty window after the SOC data ends, the 2022-01 gap month and CHB."""

from __future__ import annotations

import math
from collections import Counter

from fastapi.testclient import TestClient

from .conftest import sign_in


def _get(client: TestClient, url: str, who: str = "leader"):
    client.cookies.clear()
    response = client.get(url, cookies=sign_in(client, who, justify=False))
    assert response.status_code == 200, (url, response.text[:300])
    return response


def test_default_overview_has_change_and_truthful_levels(app_client: TestClient):
    body = _get(app_client, "/api/overview").json()
    # SOC data 2021-11..2022-03 with no force crimes in 2022-01: the longest period held in
    # full whose comparison period is held in full too is 2022-03 (against 2022-02)
    assert body["period"] == {"from": "2022-03", "to": "2022-03"}
    assert body["change_reason"] is None
    areas = body["tables"]["areas"]
    assert any(a["change"] is not None for a in areas)
    assert body["tables"]["rising"] and all(r["change"] > 0 for r in body["tables"]["rising"])
    harmed = [a for a in areas if a["soc_harm"] > 0]
    assert all(a["risk"] == "None" and a["rank"] is None for a in areas if a["soc_harm"] == 0)
    levels = Counter(a["risk"] for a in harmed)
    assert levels["Low"] > 0 and levels["High"] + levels["Medium"] <= math.ceil(0.25 * len(harmed))
    assert f"among the {len(harmed)} areas with SOC harm" in body["risk_rule"]


def test_narrowing_to_drug_supply_does_not_make_every_ward_high(app_client: TestClient):
    body = _get(app_client, "/api/overview?from=2021-11&to=2022-03&measures=drug_supply").json()
    levels = Counter(a["risk"] for a in body["tables"]["areas"])
    harmed = sum(n for level, n in levels.items() if level != "None")
    assert levels["None"] > 0 and levels["High"] < harmed
    assert levels["High"] + levels["Medium"] <= math.ceil(0.25 * harmed)


def test_an_empty_window_after_the_data_ends(app_client: TestClient):
    query = "from=2023-01&to=2023-03"
    body = _get(app_client, f"/api/overview?{query}").json()
    assert body["no_soc_data"] is True
    assert all(a["risk"] is None and a["soc_harm"] is None for a in body["tables"]["areas"])
    assert body["tables"]["rising"] == []
    html = _get(app_client, f"/overview?{query}").text
    assert "No SOC data for 2023-01 to 2023-03" in html
    assert "no change: there is no soc data in this period" in html.lower()
    geo = _get(app_client, f"/api/overview.geojson?{query}").json()
    assert geo["no_soc_data"] is True


def test_a_ward_without_soc_harm_is_not_ranked(app_client: TestClient):
    areas = _get(app_client, "/api/overview").json()["tables"]["areas"]
    quiet = next(a for a in areas if a["soc_harm"] == 0)
    page = _get(app_client, f"/api/ward/{quiet['area_code']}").json()
    assert page["rank"] is None and page["rank_text"] == "no SOC harm recorded in this period"
    html = _get(app_client, f"/ward/{quiet['area_code']}").text
    assert "no SOC harm recorded in this period" in html and ", rank " not in html


def test_the_gap_month_is_empty_in_the_ward_series(app_client: TestClient):
    page = _get(app_client, "/api/ward/E05001111?from=2021-11&to=2022-03").json()
    monthly = {r["month"]: r for r in page["tables"]["monthly"]}
    assert monthly["2022-01"]["soc_crimes"] is None and monthly["2022-01"]["crimes"] is None
    assert monthly["2022-02"]["soc_crimes"] is not None
    assert page["soc_months"]["gaps"] == ["2022-01"]


def test_chb_hold_in_the_gap_month_is_no_data_not_minus_100(app_client: TestClient):
    page = _get(app_client, "/api/chb/DEMO-CHB1").json()
    hold = next(p for p in page["tables"]["phases"] if p["phase"] == "Hold")
    assert hold["soc_crimes_per_month"] is None and hold["soc_crimes_change_%"] is None
    assert hold["crimes_change_%"] is None
    assert all(
        p[c] is None or p[c] > -100 for p in page["tables"]["phases"] for c in p if "change" in c
    )
    # the phases span 4 months, but data is held from 2021-11: a 1-month before, stated
    assert (page["before_months"], page["before_wanted_months"]) == (1, 4)
    assert any("should be 4 months" in n and "covers 1 month" in n for n in page["notes"])
    html = _get(app_client, "/chb/DEMO-CHB1").text
    assert "1 month of the 4 wanted" in html
