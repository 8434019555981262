"""Every store placeharm ever released opens, upgrades to the latest schema and keeps its rows.

The fixtures in tests/fixtures/stores/ are made by make_fixtures.py from the migrations as
they stood in each mainline commit (issue 13: a v1 store could not be opened, migration 1
was edited after release, and branches merged migrations 6 and 9 before 5, 7 and 8).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import pytest

from placeharm.services.ingest import ingest
from placeharm.store.duckdb import RECORD_TABLES, DuckDBStore
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS

# issue 17: these open DuckDB store files written by older releases or by hand; a PostgreSQL
# store's schema is derived from the same migrations by store/pg_migrations.py, and its version
# is checked on PostgreSQL by test_installation.py::test_check_names_the_installation_and_the_
# stores_schema (and a store moved there by migrate-store: tests/web/test_migrate_store.py).
DUCKDB_FILE = pytest.mark.duckdb_only(
    reason="the upgrade of a DuckDB store file (its schema_version table, files written by "
    "older releases or by hand); PostgreSQL's schema comes from store/pg_migrations.py"
)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stores"
STORES = sorted(FIXTURES.glob("schema-*.duckdb.gz"))
FIRST_RELEASE = "schema-1@5981482.duckdb.gz"
# columns of the first release that later code replaced (their values are carried over into
# record_key, outcome_ordinal and named; checked below)
DROPPED = {
    ("crimes", "crime_key"),
    ("crimes", "source_file"),
    ("crime_history", "crime_key"),
    ("outcomes", "outcome_key"),
    ("outcomes", "outcome_hash"),
    ("outcomes", "source_file"),
    ("stop_searches", "source_file"),
}


def _unpack(fixture: Path, tmp_path: Path) -> Path:
    path = tmp_path / fixture.name.removesuffix(".gz").replace("@", "-")
    path.write_bytes(gzip.decompress(fixture.read_bytes()))
    return path


def _contents(path: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table's columns and rows, read with duckdb (not placeharm)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
        out = {}
        for table in tables:
            result = con.execute(f"SELECT * FROM {table}")
            out[table] = ([d[0] for d in result.description], result.fetchall())
        return out
    finally:
        con.close()


def test_a_fixture_for_every_released_state():
    assert len(STORES) == 11, [s.name for s in STORES]
    versions = {int(v) for s in STORES for v in s.name.split("@")[0].split("-")[1:]}
    assert versions == set(range(1, 10))
    assert sum(s.stat().st_size for s in STORES) < 500_000  # small: a few rows per table


@DUCKDB_FILE
@pytest.mark.parametrize("fixture", STORES, ids=[s.name.split(".")[0] for s in STORES])
def test_released_store_upgrades_keeping_every_row(fixture: Path, tmp_path: Path):
    path = _unpack(fixture, tmp_path)
    before = _contents(path)
    with DuckDBStore(path) as store:
        versions = store._frame("SELECT version FROM schema_migrations ORDER BY version")
        assert versions["version"].to_list() == [v for v, _, _ in MIGRATIONS]
        assert store.schema_version() == LATEST_VERSION
        assert store.next_import_ids(1)[0] > 3  # the sequence kept its place
    after = _contents(path)
    for table, (columns, rows) in before.items():
        if table == "schema_migrations":
            continue
        kept = [c for c in columns if (table, c) not in DROPPED]
        assert set(kept) <= set(after[table][0]), table
        now_columns, now_rows = after[table]
        expected = sorted((tuple(r[columns.index(c)] for c in kept) for r in rows), key=repr)
        got = sorted((tuple(r[now_columns.index(c)] for c in kept) for r in now_rows), key=repr)
        assert got == expected, table
    for table in RECORD_TABLES:  # SOC tables made after the area set got its column too
        assert "area_ward" in after[table][0], table


@DUCKDB_FILE
def test_first_release_columns_carry_over(tmp_path: Path):
    """The first release keyed crimes by crime_key and outcomes by outcome_key: an ASB row's
    key becomes its record_key, outcomes get their ordinal, coverage whether it was named."""
    path = _unpack(FIXTURES / FIRST_RELEASE, tmp_path)
    before = _contents(path)
    with DuckDBStore(path) as store:
        crimes = store._frame("SELECT crime_id, record_key FROM crimes ORDER BY crime_hash")
        outcomes = store._frame("SELECT crime_hash, outcome_ordinal FROM outcomes")
        coverage = store._frame("SELECT named FROM coverage")
    columns, rows = before["crimes"]
    keys = {r[columns.index("crime_hash")]: r[columns.index("crime_key")] for r in rows}
    no_id = [r for r in crimes.rows() if r[0] is None]
    assert len(no_id) == 1 and no_id[0][1] in keys.values()
    assert all(r[1] is None for r in crimes.rows() if r[0] is not None)
    assert outcomes["crime_hash"].null_count() == 0
    assert outcomes["outcome_ordinal"].to_list() == [0, 0, 0]  # no repeated outcome
    assert coverage["named"].to_list() == [False, False, False]  # no file named for a month


@DUCKDB_FILE
@pytest.mark.parametrize("fixture", [FIRST_RELEASE, "schema-1-2-3-4-6@a99c52f.duckdb.gz"])
def test_upgraded_store_takes_a_real_ingest(
    fixture: str, tmp_path: Path, northumbria: Path, street_sample
):
    """Not only opens: a real police.uk slice imports into the upgraded store and balances,
    and the audit log missing from the 1-4,6 store now records who imported."""
    header, lines = street_sample
    slice_ = tmp_path / "2021-05-northumbria-street.csv"
    slice_.write_text("\n".join([header, *lines[:200]]) + "\n")
    path = _unpack(FIXTURES / fixture, tmp_path)
    with DuckDBStore(path) as store:
        crimes_before = store.table_counts()["crimes"]
        (result,) = ingest(store, [slice_])
        assert result.status == "ok", result.message
        assert result.rows_read == 200
        assert result.rows_read == (
            result.inserted + result.updated + result.unchanged + result.quarantined
        )
        assert store.table_counts()["crimes"] == crimes_before + result.inserted
        assert result.inserted > 150
        audited = store._frame("SELECT count(*) AS n FROM audit_log WHERE action = 'collection'")
        assert audited["n"][0] >= 1


@DUCKDB_FILE
def test_reshape_keeps_columns_added_after_the_first_release(tmp_path: Path):
    """A column a later migration added to a first-release table is carried into the new
    shape with its values (the reshape runs before the migrations, and copies every column
    it does not replace)."""
    path = _unpack(FIXTURES / FIRST_RELEASE, tmp_path)
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE crimes ADD COLUMN later_column VARCHAR")
    con.execute("UPDATE crimes SET later_column = 'kept ' || crime_hash")
    con.close()
    with DuckDBStore(path) as store:
        rows = store._frame("SELECT crime_hash, later_column FROM crimes ORDER BY crime_hash")
    assert rows.rows() == [(h, f"kept {h}") for h in (1, 2, 3)]
