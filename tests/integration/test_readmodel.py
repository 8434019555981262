"""The harm read model (services/readmodel.py) against the store, on real Northumbria data.

- Harm queries answered from the read model equal the store's own aggregate of the records
  (`store.crime_cube`, weighed with `placeharm.harm.weigh`, as the queries did before the
  read model) for seeded random sets, windows, crime-type and offence-code filters.
- An import changes the store's generation: the next query is built afresh from the new
  data, never from the old generation's model, even when asked inside a snapshot opened
  before the import committed.
- Concurrent callers of one piece wait for one build.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from placeharm.errors import StoreError
from placeharm.harm import load_index, weigh
from placeharm.model import CRIME_TYPES, month_range
from placeharm.services import harm, readmodel
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

MONTHS = ("2021-10", "2021-11", "2021-12", "2022-02", "2022-03")  # 2022-01: no file (a gap)
HELD = (dt.date(2021, 10, 1), dt.date(2022, 3, 1))


def _files(northumbria: Path, months: tuple[str, ...]) -> list[Path]:
    return [northumbria / f"{m}-northumbria-street.csv.gz" for m in months]


@pytest.fixture(scope="module")
def real(module_store_at, northumbria: Path, boundaries: Path):
    """Five real months, ward and LSOA sets; some Drugs and Burglary records given offence
    codes (a force's own records carry them), one of them a code no index knows."""
    store = module_store_at("real")
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    assert all(r.status == "ok" for r in ingest(store, _files(northumbria, MONTHS)))
    store._run(
        "UPDATE crimes SET offence_code = CASE crime_hash % 3 WHEN 0 THEN '92A' "
        "WHEN 1 THEN '28A' ELSE 'ZZZ' END WHERE crime_type IN ('Drugs', 'Burglary') "
        "AND crime_hash % 5 = 0"
    )
    store.rebuild_crime_cells()  # raw SQL bypasses the cube's maintenance
    yield store
    store.close()


def _expected(
    store: DuckDBStore,
    by: str,
    first: dt.date,
    last: dt.date,
    index,
    types: list[str] | None,
    codes: list[str] | None,
    by_month: bool,
) -> pl.DataFrame:
    """The store's aggregate of the records, weighed: what the queries read before."""
    cube = store.crime_cube(by, first, last, types, codes, by_month)
    return weigh(cube, index).with_columns(
        (pl.col("records") * pl.col("weight").fill_null(0.0)).alias("harm")
    )


def _random_query(rng: np.random.Generator) -> tuple[str, dt.date, dt.date, list | None, list]:
    months = month_range(dt.date(2021, 8, 1), dt.date(2022, 5, 1))  # also beyond the data
    i, j = sorted(rng.choice(len(months), size=2))
    types = None
    if rng.random() < 0.7:
        types = sorted(
            map(str, rng.choice(CRIME_TYPES, size=int(rng.integers(1, 5)), replace=False))
        )
    codes = None
    if rng.random() < 0.25:
        codes = sorted(map(str, rng.choice(["92A", "28A", "ZZZ", "8N"], size=2, replace=False)))
    return str(rng.choice(["ward", "lsoa"])), months[i], months[j], types, codes


def test_rank_and_series_equal_the_store_aggregate(real):
    store = real
    rng = np.random.default_rng(20261206)
    indices = [load_index("css"), load_index("cchi"), load_index("css", asb_weight=2.5)]
    for _ in range(12):
        by, first, last, types, codes = _random_query(rng)
        index = indices[int(rng.integers(len(indices)))]
        label = f"{by} {first}..{last} {types} {codes} {index.name}"

        ranked = harm.rank(store, by, first, last, index, types, codes)
        cube = _expected(store, by, first, last, index, types, codes, by_month=False)
        want = {
            code: (records, total, unweighted)
            for code, records, total, unweighted in cube.group_by("area_code")
            .agg(
                pl.col("records").sum(),
                pl.col("harm").sum(),
                pl.col("records").filter(pl.col("weight_source") == "none").sum().alias("none"),
            )
            .iter_rows()
        }
        areas = set(store.area_list(by)["area_code"])
        for row in ranked.table.iter_rows(named=True):
            records, total, unweighted = want.get(row["area_code"], (0, 0.0, 0))
            assert row["records"] == records, label
            assert row["harm"] == pytest.approx(total, rel=1e-12, abs=1e-9), label
            assert row["unweighted"] == unweighted, label
        assert set(ranked.table["area_code"].drop_nulls()) == areas, label
        sources = cube.group_by("weight_source").agg(pl.col("records").sum())
        found = dict(sources.iter_rows())
        assert ranked.meta["weights_from"] == {
            k: found.get(k, 0) for k in ("offence code", "crime type", "none")
        }, label
        ordered = ranked.table.drop_nulls("area_code")
        assert ordered["harm"].to_list() == sorted(ordered["harm"], reverse=True), label
        want_ranks = ordered["harm"].rank("min", descending=True).cast(pl.Int64)
        assert ordered["rank"].to_list() == want_ranks.to_list(), label

        monthly = _expected(store, by, first, last, index, types, codes, by_month=True)
        per_month = {
            (code, month.strftime("%Y-%m")): (records, total)
            for code, month, records, total in monthly.group_by("area_code", "month")
            .agg(pl.col("records").sum(), pl.col("harm").sum())
            .iter_rows()
        }
        trend = harm.series(store, by, first, last, index, crime_types=types, offence_codes=codes)
        gaps = set(trend.meta["gap_months"])
        assert trend.table.height == len(areas) * len(month_range(first, last)), label
        for row in trend.table.iter_rows(named=True):
            if row["month"] in gaps:
                assert row["records"] is None and row["harm"] is None, label
                continue
            records, total = per_month.get((row["area_code"], row["month"]), (0, 0.0))
            assert row["records"] == records, label
            assert row["harm"] == pytest.approx(total, rel=1e-12, abs=1e-9), label
        outside = monthly.filter(pl.col("area_code").is_null())["records"].sum()
        assert trend.meta["records_outside_set"] == outside, label


def test_compare_equals_the_store_aggregate(real):
    store = real
    index = load_index("css")
    # 2022-02..03 against 2021-12..2022-01: 2022-01 is a gap, so 2022-03 and 2022-01 are
    # left out of both periods; what is compared is 2022-02 against 2021-12
    result = harm.compare(store, "ward", dt.date(2022, 2, 1), dt.date(2022, 3, 1), "previous")
    assert result.meta["current_months_compared"] == ["2022-02"]
    assert result.meta["previous_months_compared"] == ["2021-12"]
    for column, month in (("current", dt.date(2022, 2, 1)), ("previous", dt.date(2021, 12, 1))):
        cube = _expected(store, "ward", month, month, index, None, None, by_month=False)
        want = dict(
            cube.drop_nulls("area_code").group_by("area_code").agg(pl.col("harm").sum()).iter_rows()
        )
        for code, got in result.table.select("area_code", f"harm_{column}").iter_rows():
            assert got == pytest.approx(want.get(code, 0.0), rel=1e-12, abs=1e-9)


@pytest.mark.duckdb_only(
    reason="DuckDB's generation is this process's memory: a snapshot opened before an import "
    "sees the new one, and a closed store still answers it. PostgreSQL's is the database's: "
    "a snapshot sees its own (tests/integration/test_store_shared.py::"
    "test_generation_read_from_memory_never_leads_the_data) and a closed store refuses "
    "every use (tests/integration/test_store_closed.py)"
)
def test_an_import_changes_the_figures_never_stale(
    tmp_path: Path, store_at, northumbria, boundaries
):
    store = store_at("s")
    try:
        import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
        assert all(r.status == "ok" for r in ingest(store, _files(northumbria, ("2021-10",))))
        first, last = dt.date(2021, 10, 1), dt.date(2021, 11, 1)
        before = harm.rank(store, "ward", first, last)
        assert before.meta["gap_months"] == ["2021-11"]
        generation = store.generation
        assert readmodel.held_generation(store) == generation
        builds = readmodel.counters(store)["builds"]
        assert harm.rank(store, "ward", first, last).table.equals(before.table)
        assert readmodel.counters(store)["builds"] == builds  # warm: nothing built

        # A reader's snapshot opened before the import: the read model it asks for after
        # the import committed is the new generation's, built from committed data.
        opened, imported, seen = threading.Event(), threading.Event(), {}

        def reader() -> None:
            with store.snapshot():
                seen["crimes_in_snapshot"] = store.table_counts()["crimes"]
                opened.set()
                imported.wait(60)
                seen["rank"] = harm.rank(store, "ward", first, last)

        thread = threading.Thread(target=reader)
        thread.start()
        assert opened.wait(60)
        assert all(r.status == "ok" for r in ingest(store, _files(northumbria, ("2021-11",))))
        imported.set()
        thread.join(60)
        assert store.generation != generation
        after = harm.rank(store, "ward", first, last)
        assert after.meta["gap_months"] == []
        assert after.meta["total_records"] == store.table_counts()["crimes"]
        assert after.meta["total_records"] > before.meta["total_records"]
        assert seen["crimes_in_snapshot"] == before.meta["total_records"]
        assert seen["rank"].table.equals(after.table)  # not the snapshot's older figures
        assert readmodel.held_generation(store) == store.generation

        # warm, a ranking asks nothing of the store: it answers with its connections closed
        store.close()
        assert harm.rank(store, "ward", first, last).table.equals(after.table)
        with pytest.raises(Exception, match="closed"):
            store.table_counts()
    finally:
        store.close()


def test_two_threads_one_build(real):
    store = real
    store._run("UPDATE crimes SET offence_code = offence_code WHERE false")  # a new generation
    before = readmodel.counters(store)
    barrier, results, errors = threading.Barrier(2), [], []

    def ask() -> None:
        try:
            barrier.wait(10)
            results.append(harm.rank(store, "lsoa", *HELD, "css"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    after = readmodel.counters(store)
    assert after["builds"] - before["builds"] == 2  # the area sets, and the lsoa cells: once
    assert after["waits"] + after["hits"] - before["waits"] - before["hits"] == 2
    assert results[0].table.equals(results[1].table)


def test_a_failed_build_is_not_kept(real, monkeypatch):
    """A build whose store read fails raises to its caller and is not kept: the next
    query builds again (and here succeeds)."""
    store = real
    readmodel.drop(store)
    calls = []
    read = store.crime_cells

    def failing_once(set_name: str) -> object:
        calls.append(set_name)
        if len(calls) == 1:
            raise StoreError("the store could not be read (injected)")
        return read(set_name)

    monkeypatch.setattr(store, "crime_cells", failing_once)
    with pytest.raises(StoreError, match="injected"):
        readmodel.cells(store, "ward")
    built = readmodel.cells(store, "ward")  # tried again, not a cached failure
    assert calls == ["ward", "ward"]
    assert built.nbytes > 0


def test_dense_and_month_sorted_forms_agree(real):
    """Where a set's dense cube would be too large it is held as month-sorted cells: both
    forms give the same sums (here the dense limit is set to 0 to build the second form)."""
    store = real
    rng = np.random.default_rng(7)
    index = load_index("css")
    for by in ("ward", "lsoa"):
        dense = readmodel.cells(store, by)
        with store.snapshot():
            rows = readmodel._build_cells(store, by, dense_limit=0)
        assert dense.cumulative is not None and rows.cumulative is None
        for _ in range(6):
            _, first, last, types, codes = _random_query(rng)
            keep = dense.key_filter(types, codes)
            kept = month_range(first, last)[:: int(rng.integers(1, 3))]
            for months in (None, kept):
                a = dense.totals(first, last, dense.weights(index), keep, months)
                b = rows.totals(first, last, rows.weights(index), keep, months)
                assert np.array_equal(a.records, b.records)
                assert np.array_equal(a.unweighted, b.unweighted)
                assert np.array_equal(a.by_key, b.by_key)
                assert np.allclose(a.harm, b.harm, rtol=1e-12, atol=1e-9)
            held_a, records_a, harm_a = dense.monthly(first, last, dense.weights(index), keep)
            held_b, records_b, harm_b = rows.monthly(first, last, rows.weights(index), keep)
            assert held_a == held_b and np.array_equal(records_a, records_b)
            assert np.allclose(harm_a, harm_b, rtol=1e-12, atol=1e-9)
