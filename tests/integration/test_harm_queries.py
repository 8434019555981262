"""Harm queries on a small hand-built store, against figures worked out by hand.

Three square areas A, B, C; street files for 2021-01, 2021-02 and 2021-04 (2021-03 is a
gap); a custom index (Burglary 10, Drugs 2, Robbery 100, offence code 92A 50; Shoplifting
has no weight). Every expected number below is worked out in the comments.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import placeharm
from placeharm.cli.main import app
from placeharm.errors import DataError, NotFound
from placeharm.harm import custom_index, load_index
from placeharm.services import harm
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.services.population import import_population
from placeharm.store import AnyStore, is_server_url
from shapes import square

HEADER = (
    "Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
    "Crime type,Last outcome category,Context"
)
# centres of three 0.01-degree squares near Newcastle
CENTRE = {"A": (-1.605, 54.975), "B": (-1.595, 54.975), "C": (-1.585, 54.975), None: None}
ROWS = {
    "2021-01": [
        ("a1", "A", "Burglary"),
        ("a2", "A", "Burglary"),
        ("a3", "A", "Drugs"),  # offence code 92A -> weight 50, not the Drugs type's 2
        ("b1", "B", "Robbery"),
        ("", "C", "Anti-social behaviour"),
        ("x1", None, "Burglary"),  # no location
    ],
    "2021-02": [("a4", "A", "Drugs"), ("b2", "B", "Burglary"), ("b3", "B", "Shoplifting")],
    "2021-04": [
        ("a5", "A", "Burglary"),  # offence code ZZZ (unknown) -> falls back to Burglary's 10
        ("b4", "B", "Robbery"),
        ("c1", "C", "Drugs"),
        ("c2", "C", "Drugs"),
    ],
}
INDEX_YAML = """
name: hand
edition: "test 1"
source: hand-built test index
offence_codes: {"92A": 50}
crime_types: {Burglary: 10, Drugs: 2, Robbery: 100}
"""
JAN, FEB, MAR, APR = (dt.date(2021, m, 1) for m in (1, 2, 3, 4))


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory, module_db_at) -> tuple[AnyStore, Path, str]:
    """A store by hand on the engine under test (its tests only read it): the store, the
    custom index's file, and the store's place."""
    tmp = tmp_path_factory.mktemp("harm")
    areas = tmp / "areas.geojson"
    features = [square(k, *v) for k, v in CENTRE.items() if k and v]
    areas.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    files = []
    for month, rows in ROWS.items():
        lines = [HEADER]
        for crime_id, area, crime_type in rows:
            lon, lat = CENTRE[area] if area else ("", "")
            lines.append(
                f"{crime_id},{month},Test Police,Test Police,{lon},{lat},On or near X,,,"
                f"{crime_type},,"
            )
        path = tmp / f"{month}-test-street.csv"
        path.write_text("\n".join(lines) + "\n")
        files.append(path)
    population = tmp / "population.csv"
    population.write_text("area_code,population\nA,1000\nB,2000\nZ,5\n")
    index = tmp / "hand.yaml"
    index.write_text(INDEX_YAML)
    db = module_db_at("hand")
    store = placeharm.open_store(db)
    import_areas(store, areas, "patch", code_field="code", name_field="name")
    assert all(r.status == "ok" for r in ingest(store, files))
    import_population(store, population, "patch", 2021)
    # a force's own records carry offence codes; police.uk rows do not, so set two by hand
    store._run("UPDATE crimes SET offence_code = '92A' WHERE crime_id = 'a3'")
    store._run("UPDATE crimes SET offence_code = 'ZZZ' WHERE crime_id = 'a5'")
    store.rebuild_crime_cells()  # raw SQL bypasses the cube's maintenance
    yield store, index, db
    store.close()


def _by_code(result: harm.HarmResult) -> dict[str | None, dict]:
    return {row["area_code"]: row for row in result.table.to_dicts()}


def test_rank_by_hand(hand):
    store, index, _ = hand
    result = harm.rank(store, "patch", JAN, APR, custom_index(index))
    rows = _by_code(result)
    # A: 3 Burglary (30) + Drugs with 92A (50) + Drugs (2) = 82 over 5 records
    # B: 2 Robbery (200) + Burglary (10) + Shoplifting (no weight) = 210 over 4 records
    # C: ASB (0) + 2 Drugs (4) = 4 over 3 records; no location: 1 Burglary = 10
    assert {k: (r["records"], r["harm"]) for k, r in rows.items()} == {
        "A": (5, 82.0),
        "B": (4, 210.0),
        "C": (3, 4.0),
        None: (1, 10.0),
    }
    assert [r["area_code"] for r in result.table.to_dicts()] == ["B", "A", "C", None]
    assert [rows[k]["rank"] for k in ("B", "A", "C", None)] == [1, 2, 3, None]
    assert rows["B"]["harm_share"] == pytest.approx(210 / 306)
    assert rows["A"]["harm_share"] == pytest.approx(82 / 306)
    assert sum(r["harm_share"] for r in rows.values()) == pytest.approx(1)
    assert rows["A"]["harm_per_resident"] == pytest.approx(82 / 1000)
    assert rows["B"]["harm_per_resident"] == pytest.approx(210 / 2000)
    assert rows["C"]["population"] is None and rows["C"]["harm_per_resident"] is None
    assert rows["B"]["unweighted"] == 1
    meta = result.meta
    assert meta["gap_months"] == ["2021-03"] and meta["months_covered"] == 3
    assert meta["weights_from"] == {"offence code": 1, "crime type": 11, "none": 1}
    assert meta["total_harm"] == pytest.approx(306)
    assert meta["population_year"] == 2021
    assert any("2021-03" in n for n in result.notes)
    assert any("1 records have no weight" in n for n in result.notes)
    assert "hand-built" in str(meta["index"])


def test_rank_filters_and_asb_weight(hand):
    store, index, _ = hand
    burglary = harm.rank(store, "patch", JAN, APR, custom_index(index), ["Burglary"])
    assert {k: r["harm"] for k, r in _by_code(burglary).items()} == {
        "A": 30.0,
        "B": 10.0,
        "C": 0.0,
        None: 10.0,
    }
    code = harm.rank(store, "patch", JAN, APR, custom_index(index), offence_codes=["92A"])
    assert {k: r["harm"] for k, r in _by_code(code).items()}["A"] == 50.0
    assert code.meta["total_records"] == 1
    asb = harm.rank(store, "patch", JAN, APR, custom_index(index).with_asb_weight(5))
    assert _by_code(asb)["C"]["harm"] == 9.0  # ASB 5 + 2 Drugs 4


def test_weight_precedence_with_shipped_index(hand):
    store, _, _ = hand
    css = load_index("css")
    result = harm.rank(store, "patch", JAN, JAN, css, ["Drugs"])
    # a3 is Drugs with code 92A: its weight is the code's, not the Drugs type's mean
    assert _by_code(result)["A"]["harm"] == pytest.approx(css.code_weights["92A"])
    assert css.code_weights["92A"] != pytest.approx(css.type_weights["Drugs"])
    result = harm.rank(store, "patch", APR, APR, css, ["Burglary"])
    # a5 carries ZZZ, which no index knows: Burglary's type weight applies
    assert _by_code(result)["A"]["harm"] == pytest.approx(css.type_weights["Burglary"])


def test_compare_like_for_like_across_the_gap(hand):
    store, index, _ = hand
    result = harm.compare(store, "patch", FEB, APR, "previous", custom_index(index))
    # pairs: 2021-02 with 2020-11 (no data), 2021-03 (gap) with 2020-12 (no data), and
    # 2021-04 with 2021-01: only the last pair is compared
    assert result.meta["current_months_compared"] == ["2021-04"]
    assert result.meta["previous_months_compared"] == ["2021-01"]
    assert len(result.meta["excluded_pairs"]) == 2
    assert any("like for like: 1 of 3 months" in n for n in result.notes)
    rows = _by_code(result)
    # April: A Burglary 10, B Robbery 100, C 2 Drugs 4. January: A 70, B 100, C 0 (ASB)
    assert (rows["A"]["harm_current"], rows["A"]["harm_previous"]) == (10.0, 70.0)
    assert rows["A"]["change"] == -60.0
    assert rows["A"]["pct_change"] == pytest.approx(-600 / 7)
    assert rows["B"]["pct_change"] == 0.0
    assert rows["C"]["change"] == 4.0 and rows["C"]["pct_change"] is None
    assert [rows[k]["rank_current"] for k in "BAC"] == [1, 2, 3]
    assert [rows[k]["rank_movement"] for k in "BAC"] == [0, 0, 0]
    with pytest.raises(DataError, match=r"no month of 2021-03\.\.2021-03 can be compared"):
        harm.compare(store, "patch", MAR, MAR, "previous", custom_index(index))
    with pytest.raises(DataError, match="previous"):
        harm.compare(store, "patch", FEB, APR, "sideways", custom_index(index))


def test_series_has_nulls_for_the_gap(hand):
    store, index, _ = hand
    result = harm.series(store, "patch", JAN, APR, custom_index(index), areas=["A"])
    assert result.table.select("month", "records", "harm").rows() == [
        ("2021-01", 3, 70.0),
        ("2021-02", 1, 2.0),
        ("2021-03", None, None),
        ("2021-04", 1, 10.0),
    ]
    assert result.meta["records_outside_set"] == 1
    with pytest.raises(NotFound, match="no area Q"):
        harm.series(store, "patch", JAN, APR, custom_index(index), areas=["Q"])


def test_concentration_by_hand(hand):
    store, index, _ = hand
    result = harm.concentration(
        store, "patch", JAN, APR, custom_index(index), top_percents=(34, 100), top_areas=1
    )
    # area harms 210, 82, 4 (total 296): top 34% = ceil(1.02) = 2 areas
    shares = {(r["top_percent"], r["areas"]): r["harm_share"] for r in result.table.to_dicts()}
    assert shares[(34.0, 2)] == pytest.approx(292 / 296)
    assert shares[(100.0, 3)] == pytest.approx(1)
    assert shares[(100 / 3, 1)] == pytest.approx(210 / 296)
    # Gini = 2*sum(i*x_i)/(n*sum x) - (n+1)/n with x ascending 4, 82, 210
    assert result.meta["gini"] == pytest.approx(2 * (4 + 164 + 630) / (3 * 296) - 4 / 3)
    lorenz = result.extra["lorenz"]
    assert lorenz["harm_share"].to_list() == pytest.approx([0, 4 / 296, 86 / 296, 1])


def test_queries_refuse_bad_requests(hand):
    store, _, _ = hand
    with pytest.raises(NotFound, match="no area set called 'beat'"):
        harm.rank(store, "beat", JAN, APR)
    with pytest.raises(DataError, match="before"):
        harm.rank(store, "patch", APR, JAN)
    with pytest.raises(DataError, match="unknown crime type"):
        harm.rank(store, "patch", JAN, APR, crime_types=["Piracy"])
    with pytest.raises(DataError, match="unknown harm index; choose one of: css, cchi"):
        harm.rank(store, "patch", JAN, APR, index="severity")


def test_cli_json_equals_library(hand, tmp_path: Path):
    store, index, db = hand
    expected = harm.rank(store, "patch", JAN, APR, custom_index(index)).to_dict()
    if not is_server_url(db):  # the module holds the DuckDB file open: the command reads a copy
        store._run("CHECKPOINT")
        copy = tmp_path / "copy.duckdb"
        copy.write_bytes(Path(db).read_bytes())
        db = str(copy)
    runner = CliRunner()
    got = runner.invoke(
        app,
        [
            "rank",
            "--by",
            "patch",
            "--from",
            "2021-01",
            "--to",
            "2021-04",
            "--index",
            str(index),
            "--db",
            str(db),
            "--format",
            "json",
        ],
    )
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout) == json.loads(json.dumps(expected, default=str))
    csv_out = runner.invoke(
        app,
        [
            "rank",
            "--by",
            "patch",
            "--from",
            "2021-01",
            "--to",
            "2021-04",
            "--index",
            str(index),
            "--db",
            str(db),
            "--format",
            "csv",
        ],
    )
    assert csv_out.exit_code == 0
    assert csv_out.stdout.splitlines()[1].startswith("1,B,Area B,4,210.0")
    table = runner.invoke(
        app,
        [
            "compare",
            "--by",
            "patch",
            "--from",
            "2021-02",
            "--to",
            "2021-04",
            "--index",
            str(index),
            "--db",
            str(db),
        ],
    )
    assert table.exit_code == 0, table.output
    assert "like for like" in table.stderr
