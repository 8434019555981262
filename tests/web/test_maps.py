"""The maps officers can use (issue 15): the ward, CHB and group pages' JSON twins carry each
point's details and the layers the role may see, and nothing more (partners: generalised
points, no street, no incidents or disruptions; senior leaders: no member's home)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from placeharm.services import maps, policy

from .conftest import sign_in

WARD = "E05001111"
SITE = "DEMO-CHB1"
GROUP = "DEMO-G001"
PERIOD = "from=2021-11&to=2022-03"
LAYERS = {
    "officer": ["crimes", "incidents", "intelligence", "disruptions", "partner_events"],
    "analyst": ["crimes", "incidents", "intelligence", "disruptions", "partner_events"],
    "leader": ["crimes", "incidents", "intelligence", "disruptions", "partner_events"],
    "partner": ["crimes", "intelligence", "partner_events"],
}


def _get(client: TestClient, who: str, url: str) -> Any:
    client.cookies.clear()
    response = client.get(url, cookies=sign_in(client, who))
    client.cookies.clear()
    return response


def _generalised(rows: list[dict[str, Any]]) -> bool:
    return all(
        round(r["latitude"] / policy.GENERALISE_DEGREES) * policy.GENERALISE_DEGREES
        == pytest.approx(r["latitude"], abs=1e-9)
        and round(r["longitude"], 2) == r["longitude"]
        for r in rows
    )


@pytest.mark.parametrize("who", list(LAYERS))
def test_ward_map_layers_and_point_details_as_the_role_may_see(app_client: TestClient, who: str):
    ward = _get(app_client, who, f"/api/ward/{WARD}?{PERIOD}").json()
    points = ward["points"]
    assert list(points) == LAYERS[who] == [layer["id"] for layer in ward["map_layers"]]
    for layer in ward["map_layers"]:
        rows = points[layer["id"]]
        assert layer["points"] == len(rows)
        shown = {key for key, _ in layer["columns"]}
        assert all(shown <= set(r) for r in rows), layer["id"]  # every detail it promises
    crimes = points["crimes"]
    assert crimes and sum(p["crimes"] for p in crimes) == ward["crime_points"]["crimes"]
    for point in crimes:  # a point's lines (month, type, outcome) add up to its crimes
        assert sum(line["crimes"] for line in point["details"]) == point["crimes"]
        assert set(point["details"][0]) == {"month", "crime_type", "outcome", "crimes"}
        assert point["types"] and point["outcomes"] and point["months"]
    assert {d["four_p"] for d in points.get("disruptions", [])} <= set(maps.FOUR_P)
    if who == "partner":
        assert _generalised(crimes) and _generalised(points["intelligence"])
        assert not any("location" in p for p in crimes)  # no street: a cell, not an address
        assert ward["labels"]["streets"] == []
        assert {p["handling_code"] for p in points["intelligence"]} <= {"P"}
        assert {p["handling_code"] for p in points["partner_events"]} <= {"P"}
        assert not {"subjects", "summary"} & {k for p in points["intelligence"] for k in p}
    else:
        assert all(p["location"].startswith("On or near ") for p in crimes)
        streets = ward["labels"]["streets"]
        assert streets and not streets[0]["name"].startswith("On or near")
    places = ward["labels"]["places"]
    assert places[0]["kind"] == "area" and len(places) > 1  # the ward and its neighbours
    assert len(ward["neighbours"]["features"]) == len(places) - 1


def test_partner_ward_points_are_no_finer_than_their_records(app_client: TestClient):
    """A partner's crime point lines are what the records explorer lists them: per month,
    type and outcome in a generalised cell (the analyst's, re-counted per cell, agree)."""
    partner = _get(app_client, "partner", f"/api/ward/{WARD}?{PERIOD}").json()
    analyst = _get(app_client, "analyst", f"/api/ward/{WARD}?{PERIOD}").json()
    cells: dict[tuple[float, float], int] = {}
    step = policy.GENERALISE_DEGREES
    for p in analyst["points"]["crimes"]:
        key = (
            round(round(p["longitude"] / step) * step, 2),
            round(round(p["latitude"] / step) * step, 2),
        )
        cells[key] = cells.get(key, 0) + p["crimes"]
    assert {
        (p["longitude"], p["latitude"]): p["crimes"] for p in partner["points"]["crimes"]
    } == cells


def test_ward_page_lists_every_point_it_maps(app_client: TestClient):
    """The keyboard path: one "Show on map" button per point, layer switches as the JSON."""
    ward = _get(app_client, "officer", f"/api/ward/{WARD}?{PERIOD}").json()
    html = _get(app_client, "officer", f"/ward/{WARD}?{PERIOD}").text
    for layer in ward["map_layers"]:
        assert f'data-layer="{layer["id"]}" checked' in html
        assert html.count(f'class="show-point" data-layer="{layer["id"]}"') == min(
            1000, sum(p["longitude"] is not None for p in ward["points"][layer["id"]])
        )
    assert 'href="#points-list"' in html and 'id="points-list"' in html
    partner = _get(app_client, "partner", f"/ward/{WARD}?{PERIOD}").text
    assert 'data-layer="incidents"' not in partner and 'data-layer="disruptions"' not in partner


@pytest.mark.parametrize("who", ["analyst", "partner"])
def test_chb_map_site_ring_and_crimes_before_and_after(app_client: TestClient, who: str):
    chb = _get(app_client, who, f"/api/chb/{SITE}").json()
    m = chb["map"]
    kinds = [f["properties"]["kind"] for f in m["outlines"]["features"]]
    assert "site" in kinds and "buffer" in kinds
    assert m["before"] == chb["before"]
    ids = [layer["id"] for layer in m["layers"]]
    assert set(ids) == (
        {"crimes_before", "crimes_after"} | ({"disruptions"} if who == "analyst" else set())
    )
    by_period = {r["period"]: r for r in m["counts"]}
    for period in ("before", "after"):
        rows = m["points"][f"crimes_{period}"]
        assert sum(r["crimes"] for r in rows) == (
            by_period[period]["site_crimes"] + by_period[period]["buffer_crimes"]
        )
        assert {r["place"] for r in rows} <= {"site", "buffer"}
        if who == "partner":
            assert _generalised(rows) and not any("location" in r for r in rows)
    if who == "analyst":
        assert m["points"]["disruptions"]
        assert {d["four_p"] for d in m["points"]["disruptions"]} <= set(maps.FOUR_P)


def test_group_map_homes_as_the_policy_allows(app_client: TestClient):
    officer = _get(app_client, "officer", f"/api/group/{GROUP}").json()
    leader = _get(app_client, "leader", f"/api/group/{GROUP}").json()
    homes = officer["map"]["points"]["homes"]
    members = {r["nominal_id"] for r in officer["tables"]["members"]}
    assert homes and {h["nominal_id"] for h in homes} <= members
    cells = leader["map"]["points"]["homes"]
    assert all(set(c) == {"longitude", "latitude", "members"} for c in cells)  # no one named
    assert _generalised(cells)
    assert sum(c["members"] for c in cells) >= len({h["nominal_id"] for h in homes})
    crimes = officer["map"]["points"]["force_crimes"]
    assert sum(r["crimes"] for r in officer["tables"]["crimes_by_month"]) >= len(crimes) > 0
    assert [layer["id"] for layer in officer["map"]["layers"]] == [
        "homes",
        "force_crimes",
        "disruptions",
    ]
    assert _get(app_client, "partner", f"/api/group/{GROUP}").status_code == 403
