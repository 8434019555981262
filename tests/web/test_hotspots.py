"""/hotspots and its twins (issue 16): roles as the overview's map, partners by ward only,
HTML and JSON agree, gaps and method stated, bad parameters a 400 message."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from placeharm.errors import DataError

from .conftest import sign_in


@pytest.fixture(scope="module")
def cookies(app_client: TestClient) -> dict[str, dict[str, str]]:
    return {name: sign_in(app_client, name) for name in ("analyst", "partner", "auditor")}


def _get(client: TestClient, url: str, cookie: dict[str, str], html: bool = False) -> object:
    client.cookies.clear()
    for name, value in cookie.items():
        client.cookies.set(name, value)
    headers = {"Accept": "text/html"} if html else {}
    return client.get(url, headers=headers, follow_redirects=False)


def test_lsoa_crimes_json_and_html_agree(app_client: TestClient, cookies: dict) -> None:
    query = "by=lsoa&measure=crimes&from=2021-11&to=2022-03"
    data = _get(app_client, f"/api/hotspots?{query}", cookies["analyst"]).json()
    assert data["kind"] == "hotspots" and data["marking"] == "OFFICIAL-SENSITIVE"
    rows = data["tables"]["areas"]
    assert len(rows) == data["areas"] == 916
    assert data["gap_months"] == ["2022-01"] and data["months_covered"] == 4
    assert sum(data["classes"].values()) == 916
    assert data["permutations"] == 9999 and data["fdr"] == 0.05
    assert "Getis" in data["method"] and "Benjamini" in data["method"]
    # every area's value is its police.uk crimes in the months held
    for row in rows:
        assert row["class"] in ("hot spot", "cold spot", "not significant", "not tested")
        if row["class"] == "hot spot":
            assert row["gi_z"] > 0 and row["q_value"] <= 0.05
    html = _get(app_client, f"/hotspots?{query}", cookies["analyst"], html=True)
    assert html.status_code == 200
    assert data["summary"] in html.text
    assert "No data for 2022-01" in html.text
    for row in data["tables"]["significant"]:
        assert row["area_name"] in html.text
    geo = _get(app_client, f"/api/hotspots.geojson?{query}", cookies["analyst"])
    features = geo.json()["features"]
    assert len(features) == 916
    by_code = {r["area_code"]: r["class"] for r in rows}
    assert all(f["properties"]["class"] == by_code[f["properties"]["area_code"]] for f in features)
    table = _get(app_client, f"/api/hotspots.csv?{query}", cookies["analyst"]).text
    assert table.startswith("# OFFICIAL-SENSITIVE") and len(table.strip().splitlines()) == 918


def test_the_same_query_gives_the_same_answer(app_client: TestClient, cookies: dict) -> None:
    query = "/api/hotspots?by=ward&measure=harm&permutations=99"
    first = _get(app_client, query, cookies["analyst"]).json()["tables"]["areas"]
    again = _get(app_client, query + "&fdr=0.050", cookies["analyst"]).json()["tables"]["areas"]
    assert first == again  # seeded permutations


def test_partners_see_wards_only_and_auditors_nothing(app_client: TestClient, cookies: dict):
    partner = cookies["partner"]
    assert _get(app_client, "/api/hotspots?by=lsoa", partner).status_code == 403
    assert _get(app_client, "/api/hotspots.geojson?by=lsoa", partner).status_code == 403
    ward = _get(app_client, "/api/hotspots?by=ward&measure=soc_harm", partner)
    assert ward.status_code == 200 and ward.json()["area_set"] == "ward"
    for url in ("/api/hotspots", "/api/hotspots.csv", "/api/hotspots.geojson"):
        assert _get(app_client, url, cookies["auditor"]).status_code == 403


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("measure=nope", "unknown measure"),
        ("weights=rook", "weights must be"),
        ("permutations=5", "permutations must be"),
        ("fdr=2", "false discovery rate"),
        ("weights=distance&distance=-3", "distance band"),
        ("weights=distance&distance=1e9", "at most 50,000 metres"),
        ("by=nowhere", "no area set"),
    ],
)
def test_bad_parameters_are_a_message(
    app_client: TestClient, cookies: dict, query: str, says: str
) -> None:
    response = _get(app_client, f"/api/hotspots?{query}", cookies["analyst"])
    assert response.status_code in (400, 404)
    assert says in response.json()["error"]


def test_a_soc_measure_states_its_period(app_client: TestClient, cookies: dict) -> None:
    data = _get(
        app_client,
        "/api/hotspots?by=ward&measure=drug_supply&weights=distance&distance=1500",
        cookies["analyst"],
    ).json()
    assert data["measure_label"].startswith("SOC: ")
    assert data["period"]["from"] <= data["period"]["to"]
    assert data["synthetic"] is True
    # rural wards have no other ward's centroid within 1.5 km: listed, not tested
    assert data["islands"] and "no neighbour" in " ".join(data["notes"])
    assert data["classes"]["not tested"] == len(data["islands"])


def test_the_command_prints_the_same_test(app_client: TestClient, web_db: str) -> None:
    import json

    from typer.testing import CliRunner

    from placeharm.cli.main import app

    # the command only reads: the shared demo store, while the app serves it
    runner = CliRunner()
    args = ["hotspots", "--db", web_db, "--by", "ward", "--from", "2021-11", "--to", "2022-03"]
    done = runner.invoke(app, [*args, "--format", "json", "--permutations", "99"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["kind"] == "hotspots" and len(data["rows"]) == 177
    assert data["gap_months"] == ["2022-01"] and data["permutations"] == 99
    table = runner.invoke(app, [*args, "--significant"])
    assert table.exit_code == 0 and "Getis-Ord Gi*" in table.output
    wrong = runner.invoke(app, [*args, "--measure", "nope"])  # main() makes it exit code 2
    assert isinstance(wrong.exception, DataError) and "unknown measure" in str(wrong.exception)
