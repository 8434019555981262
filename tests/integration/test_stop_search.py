"""All 33 real stop-and-search files (12,861 rows), against counts made with gzip + csv."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import polars as pl
import pytest

from engines import ENGINES
from placeharm.services import queries
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest

# issue 17: DuckDB and PostgreSQL, one store per engine for the module
pytestmark = pytest.mark.parametrize("module_engine", ENGINES, indirect=True, scope="module")

TOTAL = 12_861  # SOURCES.md


@pytest.fixture(scope="module")
def searches(module_store_at, northumbria: Path, boundaries: Path):
    files = sorted(northumbria.glob("*-stop-and-search.csv.gz"))
    assert len(files) == 33
    per_file: dict[str, list[list[str]]] = {}
    for path in files:
        with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            next(reader)
            per_file[path.name] = list(reader)
    store = module_store_at("ss")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    results = ingest(store, files)
    yield store, files, per_file, results
    store.close()


def test_stop_search_every_row_accounted_for(searches):
    store, files, per_file, results = searches
    assert all(r.status == "ok" and r.balanced for r in results)
    assert {Path(r.source_file).name: r.rows_read for r in results} == {
        k: len(v) for k, v in per_file.items()
    }
    assert sum(len(v) for v in per_file.values()) == TOTAL
    # Rows without an ID are keyed by content: identical searches stay distinct records.
    assert sum(r.inserted for r in results) == TOTAL
    assert store.table_counts()["stop_searches"] == TOTAL
    no_location = sum(1 for rows in per_file.values() for r in rows if not r[4] or not r[5])
    assert sum(r.no_location for r in results) == no_location

    again = ingest(store, files)
    assert sum(r.inserted + r.updated for r in again) == 0
    assert sum(r.unchanged for r in again) == TOTAL
    assert store.table_counts()["stop_searches"] == TOTAL


def test_stop_search_gap_is_2022_01(searches):
    store, *_ = searches
    cov = queries.coverage(store, "stop-and-search")
    assert cov.filter(~pl.col("covered"))["month"].to_list() == ["2022-01"]


def test_stop_search_coverage_rows_match_each_months_file(searches):
    """Was a bug (fixed in e9dc5c8), real data: the 2020-06 file's searches stamped
    2020-05-31T23:05:00+00:00 replaced 2020-05's coverage (457 rows) with rows=2."""
    store, _, per_file, _ = searches
    cov = queries.coverage(store, "stop-and-search").filter(pl.col("covered"))
    got = {m: (n, Path(f).name) for m, n, f in cov.select("month", "rows", "source_file").rows()}
    expected = {name[:7]: (len(rows), name) for name, rows in per_file.items()}
    assert got == expected


def test_stop_search_month_is_the_uk_month_of_its_file(searches):
    """Was a bug (fixed in e9dc5c8): months were taken from UTC, so 00:05 BST on 1 June
    (2020-05-31T23:05:00+00:00, in the June file) was stored in May."""
    store, *_ = searches
    months = store._frame(
        "SELECT s.month, i.source_file FROM stop_searches s JOIN imports i USING (import_id)"
    )
    wrong = months.filter(
        pl.col("month").dt.strftime("%Y-%m")
        != pl.col("source_file").str.extract(r"(\d{4}-\d{2})-northumbria", 1)
    )
    assert wrong.height == 0, wrong.head()
