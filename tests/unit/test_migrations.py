"""Schema migrations: a new store is at the latest version; old files upgrade; newer refuse."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from placeharm import open_store
from placeharm.errors import StoreError
from placeharm.store import is_server_url
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS
from raw_sql import query, run_sql

# issue 17: these open DuckDB store files written by older releases or by hand; a PostgreSQL
# store's schema is derived from the same migrations by store/pg_migrations.py, and its version
# is checked on PostgreSQL by test_installation.py::test_check_names_the_installation_and_the_
# stores_schema (and a store moved there by migrate-store: tests/web/test_migrate_store.py).
DUCKDB_FILE = pytest.mark.duckdb_only(
    reason="the upgrade of a DuckDB store file (its schema_version table, files written by "
    "older releases or by hand); PostgreSQL's schema comes from store/pg_migrations.py"
)


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
    "crime_cells",
}


def _file_tables(path: Path) -> set[str]:
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


def _tables(place: str) -> set[str]:
    """The store's own tables (of its schema, on PostgreSQL)."""
    schema = "current_schema()" if is_server_url(place) else "'main'"
    rows = query(
        place,
        f"SELECT table_name FROM information_schema.tables WHERE table_schema = {schema}",
    )
    return {r[0] for r in rows}


def test_new_store_is_at_latest_version(db_at):  # type: ignore[no-untyped-def]
    place = db_at("new")
    with open_store(place) as store:
        assert store.schema_version() == LATEST_VERSION
        assert set(store.table_counts()) >= {"crimes", "outcomes", "imports", "quarantine"}
        assert all(n == 0 for n in store.table_counts().values())
    assert _tables(place) >= TABLES


def test_reopening_applies_nothing(db_at):  # type: ignore[no-untyped-def]
    place = db_at("again")
    with open_store(place) as store:
        assert store.schema_version() == LATEST_VERSION
    with open_store(place) as store:
        assert store.migrate() == []
        assert store.schema_version() == LATEST_VERSION
        con_rows = store._frame("SELECT version FROM schema_migrations ORDER BY version")
        assert con_rows["version"].to_list() == list(range(1, LATEST_VERSION + 1))


@DUCKDB_FILE
def test_version_0_file_is_upgraded(tmp_path: Path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    con.close()
    assert _file_tables(path) == {"schema_migrations"}
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        assert store.table_counts()["crimes"] == 0
    assert _file_tables(path) >= TABLES


@DUCKDB_FILE
def test_empty_duckdb_file_is_upgraded(tmp_path: Path):
    path = tmp_path / "blank.duckdb"
    duckdb.connect(str(path)).close()
    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION


def test_store_newer_than_this_placeharm_is_refused(db_at):  # type: ignore[no-untyped-def]
    place = db_at("future")
    with open_store(place):
        pass
    run_sql(
        place,
        "INSERT INTO schema_migrations VALUES "
        f"({LATEST_VERSION + 1}, 'from the future', CURRENT_TIMESTAMP)",
    )
    with pytest.raises(StoreError, match=f"schema version {LATEST_VERSION + 1}"):
        open_store(place)


@DUCKDB_FILE
def test_unopenable_path_raises_store_error(tmp_path: Path):
    with pytest.raises(StoreError, match="cannot open the store"):
        DuckDBStore(tmp_path / "no" / "such" / "dir" / "x.duckdb")


@DUCKDB_FILE
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


@DUCKDB_FILE
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


@DUCKDB_FILE
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


# SHA-256 of json.dumps([version, name, statements]) of every released migration. A released
# migration is never edited: stores in the field already ran it, and the runner never runs it
# again, so an edit reaches new stores only (migration 1 was edited after release, and its
# first stores could not take an import; issue 13). If this test fails, put the migration
# back as it was and add a NEW migration that makes the change. When a migration is released,
# add its checksum here.
RELEASED = {
    1: "37fca4e89ade45ca70f97a3895dd8144c9bf0586014284cea88cedc81e40b552",
    2: "aa662a84f03da37de75e7d624174f1010f4a5823c8756a135e3bb214b5a935a3",
    3: "538c221bae6ed6e3875d9a0054d0b7bcce8a312711017c1e42c8ed2b1f9ff76a",
    4: "6c2b63cada2866a00a6ecbe6a5061573404971903aed3f1aba641e6ce4bb63d2",
    5: "f38437b40fbae6e3a9e36f531ae376b566970ec2e3dcde01feb544922664835b",
    6: "e448af2f41b2ad30f053265235c8eb10537bfc9adf07262a98d8d1782a9e7d70",
    7: "4f53f144d326c20e928cf71089bbf7c37cab45502dfc7e4727088c1f428b0dd1",
    8: "8bbdd331f2782d88e966c1a4d898c95b4614f386db4aa6db9e82e9edec7ab0eb",
    9: "35a3f928f9f4680139812ff01bdd8b291a5f75874647717b91a0fb03b5db7f86",
    10: "1290c127a3a282c1e5822c3bafd6ec13acc7fa178ff80b264afcaf8bfab43670",
    11: "5872128ed2218c963c68eaf2ce74b0575ba04608d54fdb4f4772b7a3f2754188",
}


def test_released_migrations_are_never_edited():
    import hashlib
    import json

    held = {v: (n, s) for v, n, s in MIGRATIONS}
    for version, checksum in RELEASED.items():
        assert version in held, f"released migration {version} was removed"
        name, statements = held[version]
        digest = hashlib.sha256(json.dumps([version, name, statements]).encode()).hexdigest()
        assert digest == checksum, (
            f"released migration {version} was edited: restore it, and make the change in a "
            "new migration"
        )


@DUCKDB_FILE
def test_a_store_that_skipped_a_migration_gets_it(tmp_path: Path):
    """Branches merged migration 6 before 5: a store recorded 1-4 and 6. The runner applies
    every migration the store has not recorded, not only those above its newest."""
    path = tmp_path / "gap.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    for version, name, statements in MIGRATIONS:
        if version in (1, 2, 3, 4, 6):
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    con.close()
    assert "audit_log" not in _file_tables(path)
    with DuckDBStore(path) as store:
        assert store.migrate() == []
        versions = store._frame("SELECT version FROM schema_migrations ORDER BY version")
        assert versions["version"].to_list() == [v for v, _, _ in MIGRATIONS]
    assert _file_tables(path) >= TABLES
