"""Measures and crime types as filters in the URL: every page, JSON twin and export obeys
them, says so, and refuses what does not exist."""

from __future__ import annotations

import csv
import datetime as dt
import io

import polars as pl
from fastapi.testclient import TestClient

from placeharm.harm import load_index
from placeharm.services import soc
from placeharm.soc.measures import load_measures

from .conftest import sign_in

WARD = "E05001111"
CHOSEN = ["ocg_crimes", "drug_supply"]
TYPES = ["Drugs", "Possession of weapons"]


def _get(client: TestClient, url: str, who: str = "analyst") -> object:
    client.cookies.clear()
    return client.get(url, cookies=sign_in(client, who))


def test_overview_scores_only_the_chosen_measures(app_client: TestClient):
    body = _get(app_client, f"/api/overview?measures={','.join(CHOSEN)}").json()
    areas = pl.DataFrame(body["tables"]["areas"])
    every = [m.id for m in load_measures().measures]
    assert [m["id"] for m in body["measures"]] == CHOSEN
    assert not set(every) - set(CHOSEN) & set(areas.columns)
    assert any("2 of 9 measures" in n for n in body["notes"])
    # the score is the sum of the chosen measures' harm in the full ranking
    store = app_client.app.state.placeharm.store  # type: ignore[attr-defined]
    first = dt.date.fromisoformat(body["filters"]["from"] + "-01")
    last = dt.date.fromisoformat(body["filters"]["to"] + "-01")
    full = soc.soc_rank(store, "ward", first, last, load_index("css"), load_measures()).table
    expected = full.select(
        "area_code", pl.sum_horizontal([f"{m}_harm" for m in CHOSEN]).alias("expected")
    )
    joined = areas.select("area_code", "soc_harm").join(expected, on="area_code")
    assert joined.height == areas.height > 100
    # (the page rounds scores to 6 decimal places)
    assert (joined["soc_harm"] - joined["expected"]).abs().max() < 1e-5  # type: ignore[operator]
    assert joined["soc_harm"].sum() > 0


def test_repeated_and_comma_separated_values_are_the_same_filter(app_client: TestClient):
    a = _get(app_client, "/api/overview?measures=drug_supply&measures=ocg_crimes").json()
    b = _get(app_client, "/api/overview?measures=ocg_crimes,drug_supply").json()
    assert a["tables"] == b["tables"] and a["filters"]["measures"] == "ocg_crimes,drug_supply"
    # choosing everything is no narrowing at all
    every = ",".join(m.id for m in load_measures().measures)
    c = _get(app_client, f"/api/overview?measures={every}").json()
    d = _get(app_client, "/api/overview").json()
    assert "measures" not in c["filters"] and c["tables"] == d["tables"]


def test_crime_types_narrow_the_ward_trend_map_and_records(app_client: TestClient):
    types = "&".join(f"types={t}" for t in TYPES)
    ward = _get(app_client, f"/api/ward/{WARD}?{types}").json()
    full = _get(app_client, f"/api/ward/{WARD}").json()
    monthly = {r["month"]: r["crimes"] for r in ward["tables"]["monthly"]}
    monthly_full = {r["month"]: r["crimes"] for r in full["tables"]["monthly"]}
    assert all(monthly[m] is None or monthly[m] <= monthly_full[m] for m in monthly_full) and sum(
        v or 0 for v in monthly.values()
    ) < sum(v or 0 for v in monthly_full.values())
    assert all(r["asb"] in (0, None) for r in ward["tables"]["monthly"])  # ASB not chosen
    shown = ward["crime_points"]["crimes"]
    assert 0 < shown < full["crime_points"]["crimes"]
    assert any(TYPES[0] in n for n in ward["notes"])
    # the records explorer (JSON and CSV) holds exactly those types, and as many
    period = f"from={ward['filters']['from']}&to={ward['filters']['to']}"
    base = f"kind=crimes&area={WARD}&{period}&{types}"
    records = _get(app_client, f"/api/records?{base}&page_size=1000").json()
    assert {r["crime_type"] for r in records["tables"]["records"]} <= set(TYPES)
    located = [r for r in records["tables"]["records"] if r["latitude"] is not None]
    assert len(located) == shown and records["total"] == len(records["tables"]["records"])
    text = _get(app_client, f"/api/records.csv?{base}").text
    rows = list(csv.DictReader(io.StringIO(text.split("\n", 1)[1])))
    assert rows and {r["crime_type"] for r in rows} <= set(TYPES)


def test_the_form_shows_and_keeps_the_selection(app_client: TestClient):
    app_client.cookies.clear()
    html = app_client.get(
        "/overview?measures=ocg_crimes&types=Drugs",
        cookies=sign_in(app_client, "officer"),
        headers={"Accept": "text/html"},
    ).text
    assert '<details class="more-filters" open>' in html
    assert 'name="measures" value="ocg_crimes" checked' in html
    assert 'name="measures" value="drug_supply">' in html  # not chosen: unchecked
    assert 'name="types" value="Drugs" checked' in html
    assert "measures=ocg_crimes" in html and "types=Drugs" in html  # links keep it
    assert "SOC primary harm score from 1 of 9 measures" in html


def test_unknown_values_are_refused_with_the_choices(app_client: TestClient):
    response = _get(app_client, "/api/overview?measures=ocg_crimes,made_up")
    assert response.status_code == 400
    assert "made_up" in response.json()["error"] and "drug_supply" in response.json()["error"]
    response = _get(app_client, f"/api/ward/{WARD}?types=Jaywalking")
    assert response.status_code == 400 and "Burglary" in response.json()["error"]
