"""/prominence and /alerts (issue 16): roles, the JSON twin agreeing with the page, the
overview's alerts panel, and the demo's planted risers and spikes found."""

from __future__ import annotations

import html

import polars as pl
import pytest
from fastapi.testclient import TestClient

from .conftest import sign_in


@pytest.fixture(scope="module")
def cookies(app_client: TestClient) -> dict[str, dict[str, str]]:
    return {name: sign_in(app_client, name) for name in ("analyst", "officer", "leader", "partner")}


def _get(client: TestClient, url: str, cookie: dict[str, str], page: bool = False):
    client.cookies.clear()
    for name, value in cookie.items():
        client.cookies.set(name, value)
    return client.get(url, headers={"Accept": "text/html"} if page else {})


@pytest.fixture(scope="module")
def planted(app_client: TestClient) -> dict[str, object]:
    """What soc/generate.py planted, read from the store: the nominals linked to planted
    crimes, the wards of the planted crimes linked to nobody, the nominals hidden from
    uncleared roles."""
    with app_client.app.state.placeharm.read() as store:  # type: ignore[attr-defined]
        links = store.soc_frame("soc_nominal_crimes")
        crimes = store.soc_frame("soc_force_crimes", set_name="ward")
        hidden = set(store.restricted_only_nominals())
    plant = crimes.filter(pl.col("crime_ref").str.starts_with("DEMO-PLANT-C"))
    linked = links.filter(pl.col("crime_ref").str.starts_with("DEMO-PLANT-C"))
    spikes = plant.filter(~pl.col("crime_ref").is_in(linked["crime_ref"].to_list()))
    ward_col = next(c for c in spikes.columns if c.startswith("area") and "ward" in c)
    return {
        "risers": set(linked["nominal_id"].to_list()),
        "spike_wards": set(spikes[ward_col].drop_nulls().to_list()),
        "hidden": hidden,
    }


def test_planted_risers_are_found(app_client, cookies, planted):
    body = _get(app_client, "/api/prominence", cookies["analyst"]).json()
    assert body["marking"] == "OFFICIAL-SENSITIVE"
    assert len(planted["risers"]) == 3
    rising = {r["nominal_id"] for r in body["nominals"] if r["rising"]}
    assert planted["risers"] <= rising
    one = next(r for r in body["nominals"] if r["nominal_id"] in planted["risers"])
    assert any(w["ref"].startswith("DEMO-PLANT") for w in one["why"])  # why: the records
    # baseline and window from the first month held (2021-11): five months, January a gap
    assert one["months"] == ["2021-11", "2021-12", "2022-01", "2022-02", "2022-03"]
    assert len(one["events_by_month"]) == 5
    assert None in one["events_by_month"]  # months without data are gaps, not zeros
    assert "Benjamini-Hochberg" in body["analysis"]["method"]


def test_planted_spikes_raise_alerts_in_words(app_client, cookies, planted):
    body = _get(app_client, "/api/alerts", cookies["leader"]).json()
    raised = body["tables"]["alerts"]
    assert raised and all(r["alert"] and r["q"] <= 0.1 for r in raised)
    drug = {r["area_code"] for r in raised if r["measure"] == "drug_supply"}
    assert len(planted["spike_wards"]) == 2 and planted["spike_wards"] <= drug
    r = next(r for r in raised if r["measure"] == "drug_supply")
    assert r["reason"].startswith(f"Drug supply offences in {r['area_name']}: 12 in March 2022")
    # the page says the same in words, and so does the overview's panel
    page = html.unescape(_get(app_client, "/alerts", cookies["leader"], page=True).text)
    assert all(a["reason"] in page for a in raised)
    overview = html.unescape(_get(app_client, "/overview", cookies["leader"], page=True).text)
    assert "Emerging-risk alerts" in overview and raised[0]["reason"] in overview
    assert "risk level" in overview.lower()


def test_roles_as_for_nominals(app_client, cookies, planted):
    for name in ("leader", "partner"):
        assert _get(app_client, "/api/prominence", cookies[name]).status_code == 403
    assert _get(app_client, "/api/alerts?by=lsoa", cookies["partner"]).status_code == 403
    assert _get(app_client, "/api/alerts", cookies["partner"]).status_code == 200
    officer = _get(app_client, "/api/prominence?fdr=0.5", cookies["officer"]).json()
    analyst = _get(app_client, "/api/prominence?fdr=0.5", cookies["analyst"]).json()
    shown = {r["nominal_id"] for r in officer["nominals"]}
    shown |= {r["nominal_id"] for r in officer["tables"]["highest_scores"]}
    assert planted["hidden"] and not shown & planted["hidden"]
    assert officer["analysis"]["tested"] <= analyst["analysis"]["tested"]


def test_bad_parameters_are_a_message(app_client, cookies):
    for url in ("/api/prominence?fdr=2", "/api/prominence?window=0", "/api/alerts?month=nope"):
        response = _get(app_client, url, cookies["analyst"])
        assert response.status_code == 400, url
        assert response.json().keys() == {"error", "status"}


def test_a_list_of_nominals_needs_a_stated_justification(app_client):
    cookie = sign_in(app_client, "supervisor", justify=False)
    response = _get(app_client, "/api/prominence", cookie)
    assert response.status_code == 428 and "justification" in response.json()["error"]
    page = _get(app_client, "/prominence", cookie, page=True)
    assert page.status_code == 303 or "justification" in page.url.path
