"""The harm cube (`crime_cells`, issue 14) equals a recount from the records after every kind
of import: insert, revision, outcomes, quarantine, an area set added, a SOC import, a failed
import, a kill -9 and repair, and after upgrading a released store."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pytest

import placeharm
from placeharm.services import demo, integrity, soc
from placeharm.services.areas import import_areas
from placeharm.services.ingest import ingest
from placeharm.store import is_server_url
from placeharm.store.base import CELLS_CHECK
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.migrations import LATEST_VERSION
from raw_sql import query

MAY = "2021-05-northumbria-street.csv.gz"
JUNE = "2021-06-northumbria-street.csv.gz"
JUNE_OUTCOMES = "2021-06-northumbria-outcomes.csv.gz"
JULY = "2021-07-northumbria-street.csv.gz"
CELL = ["area_code", "month", "crime_type", "offence_code"]

# every cell in one order on both engines (DuckDB's ORDER BY ALL is not PostgreSQL's)
CELLS = (
    "SELECT * FROM crime_cells "
    "ORDER BY set_name, area_code, month, crime_type, offence_code, records"
)


def recount(store: DuckDBStore, set_name: str) -> pl.DataFrame:
    """The cells of one set counted in polars from the records (not the store's SQL)."""
    crimes = store.crime_frame([f"area_{set_name}", "month", "crime_type", "offence_code"])
    return (
        crimes.rename({f"area_{set_name}": "area_code"})
        .group_by(CELL)
        .len("records")
        .with_columns(pl.col("records").cast(pl.Int64))
        .sort(CELL, nulls_last=True)
    )


def assert_cube_is_recount(store: DuckDBStore) -> None:
    sets = [s.name for s in store.area_sets()]
    assert sets
    total = store.table_counts()["crimes"]
    for name in sets:
        cells = store.crime_cells(name)
        assert cells.columns == [*CELL, "records"]
        assert cells.sort(CELL, nulls_last=True).equals(recount(store, name)), name
        assert cells["records"].sum() == total  # every record in exactly one cell of a set
    held = store._frame("SELECT DISTINCT set_name FROM crime_cells")["set_name"].to_list()
    assert set(held) <= set(sets)
    assert store.invariant_failures()[CELLS_CHECK] == 0


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(gzip.decompress(path.read_bytes()).decode(), newline="")))
    return rows[0], rows[1:]


def _write_gz(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows([header, *rows])
    path.write_bytes(gzip.compress(buffer.getvalue().encode(), mtime=time.time()))
    return path


def _type_totals(store: DuckDBStore, month: dt.date) -> Counter[str]:
    cells = store.crime_cells("ward").filter(pl.col("month") == month)
    return Counter(dict(cells.group_by("crime_type").agg(pl.col("records").sum()).iter_rows()))


@pytest.mark.both_engines  # issue 17
def test_cube_after_insert_outcomes_revision_and_quarantine(
    store_with_areas: DuckDBStore, northumbria: Path, tmp_path: Path
):
    store = store_with_areas
    assert all(r.ok for r in ingest(store, [northumbria / MAY, northumbria / JUNE]))
    assert_cube_is_recount(store)
    before = store._frame(CELLS)

    # outcomes change latest outcomes, never a count
    assert ingest(store, [northumbria / JUNE_OUTCOMES])[0].ok
    assert store._frame(CELLS).equals(before)
    assert_cube_is_recount(store)

    # a later download of May: some crimes of another type, some moved ~400 m, and two bad
    # rows (quarantined: never counted)
    header, rows = _rows(northumbria / MAY)
    kind, lon, lat, cid = (
        header.index(c) for c in ("Crime type", "Longitude", "Latitude", "Crime ID")
    )
    once = {k for k, n in Counter(r[cid] for r in rows).items() if k and n == 1}
    expected = _type_totals(store, dt.date(2021, 5, 1))
    moved = 0
    for i, row in enumerate(rows):
        if row[cid] not in once:
            continue
        if i % 41 == 0:
            new = "Drugs" if row[kind] != "Drugs" else "Robbery"
            expected[row[kind]] -= 1
            expected[new] += 1
            row[kind] = new
        elif i % 41 == 20 and row[lon]:
            row[lon] = f"{float(row[lon]) + 0.005:.6f}"
            moved += 1
    bad = [list(rows[0]), list(rows[1])]
    bad[0][header.index("Month")] = "2021-13"
    bad[1][lat] = "north"
    revised = _write_gz(tmp_path / MAY, header, [*rows, *bad])
    (result,) = ingest(store, [revised])
    assert result.ok and result.updated > 100 and moved > 50 and result.quarantined == 2
    assert_cube_is_recount(store)
    # the old cells lost what the new ones gained, type by type (counted from the file)
    assert _type_totals(store, dt.date(2021, 5, 1)) == +expected
    # June was not touched by May's revision
    june = pl.col("month") == dt.date(2021, 6, 1)
    assert store._frame(CELLS).filter(june).equals(before.filter(june))
    # crimes first published a month earlier (the earliest month wins): they leave June's
    # cells for April's
    jheader, jrows = _rows(northumbria / JUNE)
    jid, jmonth = jheader.index("Crime ID"), jheader.index("Month")
    counts = Counter(r[jid] for r in jrows)
    early = [list(r) for r in jrows if r[jid] and counts[r[jid]] == 1][:30]
    for row in early:
        row[jmonth] = "2021-04"
    june_before = _type_totals(store, dt.date(2021, 6, 1))
    (result,) = ingest(
        store, [_write_gz(tmp_path / "2021-04-northumbria-street.csv.gz", jheader, early)]
    )
    assert result.ok and result.updated == 30
    assert_cube_is_recount(store)
    moved_types = Counter(r[jheader.index("Crime type")] for r in early)
    assert _type_totals(store, dt.date(2021, 4, 1)) == moved_types
    assert _type_totals(store, dt.date(2021, 6, 1)) == +(june_before - moved_types)
    # the older download of May again (a replay): its rows lose to the newer vintage held
    held = store._frame(CELLS)
    (replay,) = ingest(store, [northumbria / MAY])
    assert replay.ok and replay.stale > 100 and replay.updated == 0
    assert store._frame(CELLS).equals(held)
    assert_cube_is_recount(store)


@pytest.mark.both_engines  # issue 17
def test_cube_after_an_area_set_is_added_and_assigned(
    store: DuckDBStore, northumbria: Path, boundaries: Path
):
    import_areas(store, boundaries / "northumbria_lsoa2011.geojson", "lsoa")
    assert ingest(store, [northumbria / MAY])[0].ok
    assert_cube_is_recount(store)
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    # added, not yet assigned: every record is outside the new set's areas
    assert store.crime_cells("ward")["area_code"].null_count() == store.crime_cells("ward").height
    assert_cube_is_recount(store)
    assert ingest(store, [northumbria / JUNE])[0].ok  # assigns the new set first
    assert store.crime_cells("ward")["area_code"].is_not_null().sum() > 100
    assert_cube_is_recount(store)
    # the set replaced by a new version: its cells follow the codes held, then the reassignment
    import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
    assert_cube_is_recount(store)
    assert ingest(store, [northumbria / JULY])[0].ok
    assert {s.name: s.assigned for s in store.area_sets()} == {"lsoa": True, "ward": True}
    assert_cube_is_recount(store)


def test_cube_after_the_soc_overlay(tmp_path: Path, store_at):
    """A SOC import (with its CHB area set) does not change crime counts and keeps the cube."""
    store = store_at("demo")
    try:
        demo.build_demo(store)
        assert_cube_is_recount(store)
        built = soc.build_overlay(store, seed=3, out_dir=tmp_path / "csv")
        assert all(r.ok for r in built.results)
        assert "chb" in {s.name for s in store.area_sets()}
        assert_cube_is_recount(store)
    finally:
        store.close()


class Boom(RuntimeError):
    pass


@pytest.mark.both_engines  # issue 17
def test_a_failed_import_leaves_the_cube_as_it_was(
    store_with_areas: DuckDBStore, northumbria: Path, monkeypatch: pytest.MonkeyPatch
):
    store = store_with_areas
    assert ingest(store, [northumbria / MAY])[0].ok
    before = store._frame(CELLS)
    engine = type(store)  # DuckDBStore or PostgresStore
    original = engine.record_coverage

    def fail_june(self: DuckDBStore, frame: pl.DataFrame) -> None:  # after crimes are written
        if (frame["month"] == dt.date(2021, 6, 1)).any():
            raise Boom("disk on fire")
        original(self, frame)

    monkeypatch.setattr(engine, "record_coverage", fail_june)
    (failed,) = ingest(store, [northumbria / JUNE])
    assert failed.status == "failed"
    assert store._frame(CELLS).equals(before)
    assert_cube_is_recount(store)
    # in a group: the group rolls back, then each file is replayed alone; July lands
    results = ingest(store, [northumbria / JUNE, northumbria / JULY])
    assert [r.status for r in results] == ["failed", "ok"]
    months = set(store._frame("SELECT DISTINCT month FROM crime_cells")["month"])
    assert months == {dt.date(2021, 5, 1), dt.date(2021, 7, 1)}
    assert_cube_is_recount(store)
    monkeypatch.undo()
    assert ingest(store, [northumbria / JUNE])[0].ok
    assert_cube_is_recount(store)


@pytest.mark.both_engines  # issue 17
def test_check_reports_and_repair_rebuilds_the_cube(
    store_with_areas: DuckDBStore, northumbria: Path
):
    store = store_with_areas
    assert ingest(store, [northumbria / MAY])[0].ok
    good = store._frame(CELLS)
    store._run("UPDATE crime_cells SET records = records + 1 WHERE crime_type = 'Drugs'")
    store._run("DELETE FROM crime_cells WHERE crime_type = 'Robbery' AND set_name = 'lsoa'")
    store._run("INSERT INTO crime_cells VALUES ('gone', 'X', DATE '2021-05-01', 'Drugs', NULL, 3)")
    report = integrity.check(store)
    assert not report.ok and report.failures[CELLS_CHECK] > 0
    assert {k for k, v in report.failures.items() if v} == {CELLS_CHECK}
    fixed = integrity.check(store, repair=True)
    assert fixed.ok and fixed.repaired[CELLS_CHECK] == report.failures[CELLS_CHECK]
    assert store._frame(CELLS).equals(good)


def _wait_for_a_commit(place: str, child: subprocess.Popen[bytes]) -> None:
    """Until the child has committed some crimes (or ended): on DuckDB, once a commit is whole
    in the write-ahead log (it is written at the commit: wait for its size to hold still); on
    PostgreSQL, once committed crimes can be read from another connection."""
    if is_server_url(place):
        while child.poll() is None and not query(place, "SELECT count(*) FROM crimes")[0][0]:
            time.sleep(0.003)
        return
    wal = Path(f"{place}.wal")
    sizes = [0]
    while child.poll() is None and not (sizes[-1] >= 4 << 20 and sizes[-3:] == [sizes[-1]] * 3):
        time.sleep(0.003)
        sizes.append(wal.stat().st_size if wal.exists() else 0)


def test_kill_9_mid_ingest_then_check_and_repair(northumbria: Path, boundaries: Path, db_at):
    from test_kill_ingest import _ingest  # its child commits a group every ~6,000 rows

    files = [northumbria / MAY, northumbria / JUNE, northumbria / JUNE_OUTCOMES]
    killed = 0
    for trial in range(2):
        path = db_at(f"killed{trial}")
        with placeharm.open_store(path) as store:
            import_areas(store, boundaries / "northumbria_ward2013.geojson", "ward")
        child = _ingest(path, files)  # type: ignore[arg-type]  # a path or a URL, as --db
        _wait_for_a_commit(path, child)  # then killed mid-ingest
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        with placeharm.open_store(path) as store:
            assert store.invariant_failures()[CELLS_CHECK] == 0  # committed with the records
            killed += child.returncode == -signal.SIGKILL and store.table_counts()["crimes"] > 0
            assert integrity.check(store, repair=True).ok
            assert_cube_is_recount(store)
            assert all(r.ok for r in ingest(store, files))
            assert_cube_is_recount(store)
        if killed:
            break
    assert killed  # at least one kill fell after some commits and before the end


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
STORES = sorted(FIXTURES.glob("schema-*.duckdb.gz"))


@pytest.mark.duckdb_only(
    reason="upgrades released DuckDB store files (tests/fixtures/stores); a PostgreSQL store "
    "is made at the latest schema, or moved whole by migrate-store (cube rows included: "
    "tests/web/test_migrate_store.py), and its cube built from records is pinned by "
    "test_store_engines' demo test"
)
@pytest.mark.parametrize("fixture", STORES, ids=[s.name.split(".")[0] for s in STORES])
def test_upgrading_a_released_store_builds_its_cube(fixture: Path, tmp_path: Path):
    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress(fixture.read_bytes()))
    with DuckDBStore(path) as store:
        assert store.table_counts()["crimes"] > 0
        assert store.crime_cells("ward").height > 0
        assert_cube_is_recount(store)


@pytest.mark.duckdb_only(
    reason="a released DuckDB file's upgrade failing inside migration 11, read back with "
    "duckdb; PostgreSQL's schema is derived at the latest version (pg_migrations) and has no "
    "released stores to upgrade"
)
def test_the_cube_is_built_with_its_migration_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A store never holds the cube's table unbuilt: a failure while filling it rolls back
    migration 11 with it, and the next open applies it again."""
    path = tmp_path / "old.duckdb"
    path.write_bytes(gzip.decompress(STORES[0].read_bytes()))

    def fail(self: DuckDBStore) -> int:
        raise Boom("killed while counting")

    monkeypatch.setattr(DuckDBStore, "rebuild_crime_cells", fail)
    with pytest.raises(Boom):
        DuckDBStore(path)
    monkeypatch.undo()
    con = duckdb.connect(str(path), read_only=True)  # as the failure left it
    try:
        versions = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert 11 not in versions and "crime_cells" not in tables
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        assert_cube_is_recount(store)
