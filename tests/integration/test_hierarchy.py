"""Hierarchy lookups: LSOA -> MSOA and local authority -> community safety partnership, force."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from placeharm.errors import DataError, NotFound
from placeharm.services.areas import import_areas, import_lookup, parents
from placeharm.store.duckdb import DuckDBStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

LSOA = "E01008288"  # Newcastle upon Tyne 027A


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def reference(shared_data: Path) -> Path:
    return shared_data / "reference"


@pytest.fixture
def with_lookups(store: DuckDBStore, reference: Path) -> DuckDBStore:
    n_msoa = import_lookup(
        store,
        reference / "lookup_lsoa11_msoa11.csv",
        "lsoa",
        "lsoa11_code",
        "msoa",
        "msoa11_code",
        "msoa11_name",
    )
    n_lad = import_lookup(
        store,
        reference / "lookup_lsoa11_ltla21.csv",
        "lsoa",
        "lsoa11_code",
        "lad",
        "ltla21_code",
        "ltla21_name",
    )
    top = reference / "lookup_ltla24_csp24_pfa24.csv"
    n_csp = import_lookup(store, top, "lad", "ltla24_code", "csp", "csp24_code", "csp24_name")
    n_force = import_lookup(store, top, "lad", "ltla24_code", "force", "pfa24_code", "pfa24_name")
    assert n_msoa == len({r["lsoa11_code"] for r in _csv(reference / "lookup_lsoa11_msoa11.csv")})
    assert n_lad == len({r["lsoa11_code"] for r in _csv(reference / "lookup_lsoa11_ltla21.csv")})
    assert n_csp == n_force == len({r["ltla24_code"] for r in _csv(top)})
    return store


def test_parents_of_an_lsoa_reach_the_force(with_lookups: DuckDBStore, reference: Path):
    msoa = next(r for r in _csv(reference / "lookup_lsoa11_msoa11.csv") if r["lsoa11_code"] == LSOA)
    lad = next(r for r in _csv(reference / "lookup_lsoa11_ltla21.csv") if r["lsoa11_code"] == LSOA)
    top = next(
        r
        for r in _csv(reference / "lookup_ltla24_csp24_pfa24.csv")
        if r["ltla24_code"] == lad["ltla21_code"]
    )
    chain = parents(with_lookups, "lsoa", LSOA)
    by_set = {s: (code, name) for s, code, name in chain}
    assert by_set == {
        "msoa": (msoa["msoa11_code"], msoa["msoa11_name"]),
        "lad": (lad["ltla21_code"], lad["ltla21_name"]),
        "csp": (top["csp24_code"], top["csp24_name"]),
        "force": (top["pfa24_code"], top["pfa24_name"]),
    }
    assert by_set["force"] == ("E23000007", "Northumbria")
    assert by_set["msoa"] == ("E02001734", "Newcastle upon Tyne 027")
    assert by_set["lad"][0] == "E08000021"
    assert len(chain) == 4
    # Parents come before their own parents (breadth first).
    order = [s for s, _, _ in chain]
    assert order.index("lad") < order.index("csp")
    assert order.index("lad") < order.index("force")


def test_parents_of_a_local_authority(with_lookups: DuckDBStore):
    chain = parents(with_lookups, "lad", "E08000024")  # Sunderland
    assert {s: c for s, c, _ in chain} == {"csp": "E22000248", "force": "E23000007"}


def test_reimporting_a_lookup_replaces_it(with_lookups: DuckDBStore, tmp_path: Path):
    small = tmp_path / "lookup.csv"
    small.write_text("lsoa11_code,msoa11_code,msoa11_name\nE01008288,E02999999,Made up\n")
    assert (
        import_lookup(
            with_lookups, small, "lsoa", "lsoa11_code", "msoa", "msoa11_code", "msoa11_name"
        )
        == 1
    )
    by_set = {s: c for s, c, _ in parents(with_lookups, "lsoa", LSOA)}
    assert by_set["msoa"] == "E02999999"
    assert by_set["lad"] == "E08000021"  # other pairs untouched
    n = with_lookups._frame(
        "SELECT count(*) AS n FROM area_lookups WHERE from_set = 'lsoa' AND to_set = 'msoa'"
    )["n"][0]
    assert n == 1


def test_unknown_area_is_not_found(with_lookups: DuckDBStore):
    with pytest.raises(NotFound, match="no area E01999999"):
        parents(with_lookups, "lsoa", "E01999999")


def test_area_with_a_polygon_but_no_lookup_has_no_parents(store: DuckDBStore, boundaries: Path):
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    assert parents(store, "lsoa", LSOA) == []


def test_lookup_with_a_missing_column_is_refused(store: DuckDBStore, reference: Path):
    with pytest.raises(DataError, match="no column msoa21_code"):
        import_lookup(
            store,
            reference / "lookup_lsoa11_msoa11.csv",
            "lsoa",
            "lsoa11_code",
            "msoa",
            "msoa21_code",
        )
    with pytest.raises(DataError, match="not allowed"):
        import_lookup(
            store,
            reference / "lookup_lsoa11_msoa11.csv",
            "LSOA",
            "lsoa11_code",
            "msoa",
            "msoa11_code",
        )
