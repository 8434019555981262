"""Issue 12, item 1: no request reaches a file path.

`index=` names a shipped or registered harm index. Anything else (a path to an existing or
missing file, a real index file, a name nobody registered) is one and the same 400, with no
file opened and nothing of any file in the answer. A registered custom index is chosen by
name and its weights rank the areas.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from placeharm.cli.main import app as cli
from placeharm.config import load_settings
from placeharm.errors import ConfigError
from placeharm.harm import unknown_index_message
from placeharm.services import indices
from placeharm.web.app import create_app

from .conftest import sign_in
from .opens import OPENS

WARD = "E05001111"
ROUTES = (
    "/api/overview",
    "/api/overview.csv",
    "/api/overview.geojson",
    "/api/overview.gpkg",
    f"/api/ward/{WARD}",
    f"/api/ward/{WARD}.csv",
    f"/api/ward/{WARD}.geojson",
    f"/api/ward/{WARD}.gpkg",
    "/api/records",
)
PAGES = ("/overview", f"/ward/{WARD}")

# what the probe files hold: none of it may come back
CSV_TEXT = "offence_code,crime_type,zz_secret_col,weight\n92A,,x,12\n,Drugs,y,SECRETWEIGHT\n"
YAML_TEXT = "exfil_marker: 1\ncrime_types: {Drugs: notanumber}\n"
SECRETS = ("root:", "zz_secret_col", "SECRETWEIGHT", "exfil_marker", "notanumber", "92A,,x")


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("probes")
    (folder / "weights.csv").write_text(CSV_TEXT)
    (folder / "weights.yaml").write_text(YAML_TEXT)
    return [
        "/etc/passwd",  # exists, not an index
        str(folder / "weights.csv"),  # a real CSV index file with a bad row
        str(folder / "weights.yaml"),  # a real YAML index file with a bad weight
        str(folder / "missing.csv"),  # does not exist
        str(folder),  # a directory
        "../../../../etc/passwd",
        "weights.csv",
        "C:\\Windows\\win.ini",
        "severity",  # a name nobody registered
        "css:gotham",  # a force with no weights
        "css:../../etc/passwd",
        "drugs-focus",  # registered in another store, not this one
        "x" * 3000,
    ]


def _as(client: TestClient, who: str) -> TestClient:
    client.cookies.clear()
    client.cookies.set("placeharm_session", sign_in(client, who)["placeharm_session"])
    return client


@pytest.mark.parametrize("route", ROUTES + PAGES)
def test_every_unknown_index_is_the_same_400_and_opens_nothing(
    app_client: TestClient, probes: list[str], route: str
):
    client = _as(app_client, "analyst")
    html = route in PAGES
    headers = {"accept": "text/html"} if html else {}
    bodies = set()
    with OPENS.watching() as opened:
        for value in probes:
            response = client.get(route, params={"index": value}, headers=headers)
            assert response.status_code == 400, (value, response.text[:200])
            bodies.add(response.content)
            for secret in SECRETS:
                assert secret not in response.text, (value, secret)
            assert "/etc" not in response.text and "probes" not in response.text
    assert len(bodies) == 1, f"{len(bodies)} different refusals on {route}"
    named = ("passwd", "weights.csv", "weights.yaml", "missing.csv", "win.ini", "probes")
    assert not [p for p in opened if any(n in p for n in named)], opened
    message = unknown_index_message()
    if html:
        assert "choose one of: css, cchi" in response.text
    else:
        assert response.json() == {"error": message, "status": 400}


def test_shipped_indices_are_still_chosen_by_name(app_client: TestClient):
    client = _as(app_client, "analyst")
    period = {"from": "2022-01", "to": "2022-03"}
    default = client.get("/api/overview", params=period).json()
    north = client.get("/api/overview", params={**period, "index": "CSS:Northumbria"}).json()
    assert default["index"]["name"] == "css" and default["filters"]["index"] == "css"
    assert north["index"]["name"] == "css:northumbria"
    assert north["filters"]["index"] == "css:northumbria"  # canonical, in every link
    assert client.get("/api/overview", params={**period, "index": "cchi"}).status_code == 200


@pytest.fixture(scope="module")
def index_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder the custom index is registered from."""
    folder = tmp_path_factory.mktemp("registered")
    (folder / "members.yaml").write_text(MEMBERS_YAML)
    return folder


@pytest.fixture(scope="module")
def registered_db(module_demo: str, index_folder: Path) -> Iterator[str]:
    """The module's copy of the demo store with a custom index registered through the CLI."""
    db = module_demo
    index_file = index_folder / "members.yaml"
    result = CliRunner().invoke(
        cli,
        [
            "harm",
            "add",
            str(index_file),
            "--name",
            "members-focus",
            "--edition",
            "2026-12",
            "--description",
            "tasking: people over places",
            "--db",
            db,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Registered harm index members-focus" in result.stdout
    yield db


# The two nominal measures take the weight of one offence code each (measures.yaml):
# ocg_members_pis 92A, ucg_pcg_members 8N. This index makes a UCG/PCG member weigh 1,000
# and an OCG member or priority individual 1.
MEMBERS_YAML = """\
title: Members focus
source: test of issue 12
base: css
offence_codes: {"92A": 1, "8N": 1000}
"""


def test_a_registered_index_is_chosen_by_name_and_its_weights_rank(
    registered_db: str, index_folder: Path
):
    with TestClient(create_app(load_settings(db=registered_db))) as client:
        client = _as(client, "analyst")
        query = {
            "from": "2022-01",
            "to": "2022-03",
            "measures": "ocg_members_pis,ucg_pcg_members",
        }
        css = client.get("/api/overview", params=query).json()
        mine = client.get("/api/overview", params={**query, "index": "Members-Focus"}).json()
        assert mine["index"]["name"] == "members-focus"
        assert mine["index"]["title"] == "Members focus"
        digest = hashlib.sha256(MEMBERS_YAML.encode()).hexdigest()
        assert mine["index"]["edition"] == f"2026-12 (file sha256 {digest[:12]})"
        assert str(index_folder) not in client.get("/api/overview", params=query).text
        assert "members-focus" in mine["filter_options"]["indices"]
        rows = mine["tables"]["areas"]
        # hand calculation: harm = 1 x OCG members and PIs + 1000 x UCG/PCG members
        for row in rows:
            expected = row["ocg_members_pis"] * 1 + row["ucg_pcg_members"] * 1000
            assert row["soc_harm"] == pytest.approx(expected, rel=1e-9), row["area_code"]
        order = sorted(
            rows,
            key=lambda r: (-(r["ocg_members_pis"] + 1000 * r["ucg_pcg_members"]), r["rank"]),
        )
        assert [r["area_code"] for r in rows] == [r["area_code"] for r in order]
        # the counts are the index's business not at all; the ranking is
        counts = {r["area_code"]: (r["ocg_members_pis"], r["ucg_pcg_members"]) for r in rows}
        assert counts == {
            r["area_code"]: (r["ocg_members_pis"], r["ucg_pcg_members"])
            for r in css["tables"]["areas"]
        }
        assert [r["area_code"] for r in rows][:10] != [
            r["area_code"] for r in css["tables"]["areas"]
        ][:10]
        # the HTML page offers it and marks it chosen
        page = client.get("/overview", params={**query, "index": "members-focus"})
        assert '<option value="members-focus" selected>' in page.text
        # a path to the very file it was registered from is still the one refusal
        other = client.get("/api/overview", params={"index": str(index_folder)})
        assert other.status_code == 400
        assert other.json()["error"] == unknown_index_message(["members-focus"])


def test_the_default_index_setting_must_name_a_shipped_or_registered_index(
    registered_db: str, tmp_path: Path
):
    weights = tmp_path / "w.csv"
    weights.write_text("crime_type,weight\nDrugs,5\n")
    for bad in (str(weights), "/etc/passwd", "severity", "css:gotham"):
        with pytest.raises(ConfigError, match="harm_index setting names no shipped") as caught:
            create_app(load_settings(db=registered_db, harm_index=bad))
        assert bad not in str(caught.value)  # the message names the choices, not the value
    app = create_app(load_settings(db=registered_db, harm_index="members-focus"))
    with TestClient(app) as client:
        client = _as(client, "officer")
        body = client.get("/api/overview", params={"from": "2022-01", "to": "2022-03"}).json()
        assert body["index"]["name"] == "members-focus"
        assert body["filters"]["index"] == "members-focus"


def test_the_registry_is_read_once_per_process(registered_db: str):
    """Requests use the registry held in memory: a row written behind the service's back is
    not seen until the registry is refreshed (as `harm add` does)."""
    app = create_app(load_settings(db=registered_db))
    with TestClient(app) as client:
        client = _as(client, "analyst")
        store = app.state.placeharm.store
        held = indices.indices(store)
        assert client.get("/api/overview", params={"index": "members-focus"}).status_code == 200
        assert indices.indices(store) is held  # no re-read per request
        store._run(
            "INSERT INTO harm_indices SELECT 'late', title, edition, description, source, unit, "
            "secondary, type_scope, source_file, file_sha256, added_by, added_at "
            "FROM harm_indices WHERE name = 'members-focus'"
        )
        store._run(
            "INSERT INTO harm_index_weights SELECT 'late', weight_kind, weight_key, weight "
            "FROM harm_index_weights WHERE index_name = 'members-focus'"
        )
        try:
            assert client.get("/api/overview", params={"index": "late"}).status_code == 400
            indices.refresh(store)
            assert client.get("/api/overview", params={"index": "late"}).status_code == 200
        finally:
            store.remove_harm_index("late")
            indices.refresh(store)
