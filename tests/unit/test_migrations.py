"""Schema migrations: a new store is at the latest version; old files upgrade; newer refuse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from placeharm.errors import StoreError
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS

TABLES = {
    "imports",
    "quarantine",
    "crimes",
    "crime_history",
    "outcomes",
    "stop_searches",
    "coverage",
    "area_sets",
    "areas",
    "area_lookups",
    "area_populations",
    "soc_nominals",
    "soc_groups",
    "soc_memberships",
    "soc_addresses",
    "soc_nominal_crimes",
    "soc_nominal_links",
    "soc_intelligence",
    "soc_incidents",
    "soc_force_crimes",
    "soc_disruptions",
    "soc_partner_events",
    "soc_chb_phases",
    "soc_history",
    "users",
    "sessions",
    "harm_indices",
    "harm_index_weights",
    "audit_log",
    "audit_justifications",
    "schema_migrations",
}


def _tables(path: Path) -> set[str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    finally:
        con.close()


def test_migrations_are_numbered_in_order():
    versions = [v for v, _, _ in MIGRATIONS]
    assert versions == list(range(1, len(versions) + 1))
    assert versions[-1] == LATEST_VERSION


def test_new_store_is_at_latest_version(tmp_path: Path):
    path = tmp_path / "new.duckdb"
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        assert set(store.table_counts()) >= {"crimes", "outcomes", "imports", "quarantine"}
        assert all(n == 0 for n in store.table_counts().values())
    assert _tables(path) >= TABLES


def test_reopening_applies_nothing(tmp_path: Path):
    path = tmp_path / "again.duckdb"
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
    with DuckDBStore(path) as store:
        assert store.migrate() == []
        assert store.schema_version() == LATEST_VERSION
        con_rows = store._frame("SELECT version FROM schema_migrations ORDER BY version")
        assert con_rows["version"].to_list() == list(range(1, LATEST_VERSION + 1))


def test_version_0_file_is_upgraded(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    con.close()
    assert _tables(path) == {"schema_migrations"}
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        assert store.table_counts()["crimes"] == 0
    assert _tables(path) >= TABLES


def test_empty_duckdb_file_is_upgraded(tmp_path: Path):
    path = tmp_path / "blank.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION


def test_store_newer_than_this_placeharm_is_refused(tmp_path: Path):
    path = tmp_path / "future.duckdb"
    with DuckDBStore(path):
        pass
    con = duckdb.connect(str(path))
    con.execute(
        "INSERT INTO schema_migrations VALUES (?, 'from the future', now())", [LATEST_VERSION + 1]
    )
    con.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST_VERSION + 1}"):
        DuckDBStore(path)


def test_unopenable_path_raises_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open the store"):
        DuckDBStore(tmp_path / "no" / "such" / "dir" / "x.duckdb")


def test_version_1_store_upgrades_keeping_its_records(tmp_path: Path):
    """A store written before offence codes and populations existed opens and upgrades."""
    path = tmp_path / "v1.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    version, name, statements = MIGRATIONS[0]
    for statement in statements:
        con.execute(statement)
    con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute(
        "INSERT INTO crimes (crime_hash, crime_id, source_kind, month, crime_type, located) "
        "VALUES (1, 'abc', 'street', DATE '2021-01-01', 'Burglary', FALSE)"
    )
    con.close()
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        rows = store._frame("SELECT crime_id, crime_type, offence_code FROM crimes")
        assert rows.rows() == [("abc", "Burglary", None)]
        assert store.populations("lsoa").is_empty()


def test_upgrade_adds_area_columns_to_new_record_tables(tmp_path: Path):
    """A version 2 store with an area set, upgraded: the new SOC tables get that set's column."""
    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    for version, name, statements in MIGRATIONS[:2]:
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute(
        "INSERT INTO area_sets VALUES ('ward', 'w.geojson', 'c', 'n', 'EPSG:4326', 1, 0, 0, "
        "now(), true)"
    )
    con.execute("ALTER TABLE crimes ADD COLUMN area_ward VARCHAR")
    con.close()
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        columns = store._frame(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'soc_force_crimes'"
        )["column_name"].to_list()
        assert "area_ward" in columns


def test_version_4_accounts_upgrade_keeping_users_and_sessions(tmp_path: Path):
    """Issue 12 (migration 7): users gain disabled_at and password_changed_at, sessions
    last_seen_at; existing accounts and sessions keep working."""
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    for version, name, statements in MIGRATIONS:
        if version > 4:
            continue
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.execute(
        "INSERT INTO users VALUES ('pc1', 'PC', 'officer', 'h', FALSE, FALSE, "
        "TIMESTAMP '2025-01-02 03:04:05'), ('old', 'Old', 'officer', 'h', TRUE, FALSE, "
        "TIMESTAMP '2024-01-01 00:00:00')"
    )
    con.execute(
        "INSERT INTO sessions VALUES ('t', 'pc1', TIMESTAMP '2025-01-02 04:00:00', "
        "TIMESTAMP '2025-01-02 14:00:00')"
    )
    con.close()
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        pc1 = store.user("pc1")
        assert pc1 is not None and pc1["password_changed_at"].isoformat() == "2025-01-02T03:04:05"
        assert pc1["disabled_at"] is None
        old = store.user("old")
        assert old is not None and old["disabled"] and old["disabled_at"] is not None
        session = store.session("t")
        assert session is not None
        assert session["last_seen_at"] == session["created_at"]
