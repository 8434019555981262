"""Migration 8 (single sign-on): a store with local accounts upgrades, and they stay local."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from placeharm.services import auth
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS

# issue 17: these open DuckDB store files written by older releases or by hand; a PostgreSQL
# store's schema is derived from the same migrations by store/pg_migrations.py, and its version
# is checked on PostgreSQL by test_installation.py::test_check_names_the_installation_and_the_
# stores_schema (and a store moved there by migrate-store: tests/web/test_migrate_store.py).
DUCKDB_FILE = pytest.mark.duckdb_only(
    reason="the upgrade of a DuckDB store file (its schema_version table, files written by "
    "older releases or by hand); PostgreSQL's schema comes from store/pg_migrations.py"
)


@DUCKDB_FILE
def test_local_accounts_upgrade_to_auth_source_local(tmp_path: Path) -> None:
    path = tmp_path / "v4.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR, "
        "applied_at TIMESTAMP)"
    )
    for version, name, statements in MIGRATIONS:
        if version <= 4:  # the schema before single sign-on
            for statement in statements:
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
    password_hash = auth._HASHER.hash("a-long-old-password")
    con.execute(
        "INSERT INTO users VALUES ('olduser', 'Old User', 'officer', ?, FALSE, FALSE, now())",
        [password_hash],
    )
    con.close()

    with DuckDBStore(path) as store:
        assert store.schema_version() == LATEST_VERSION
        record = store.user("olduser")
        assert record is not None and record["auth_source"] == "local"
        assert store.user_by_subject("https://idp.example.org", "olduser") is None
        assert auth.login(store, "olduser", "a-long-old-password")
        columns = store._frame(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )["column_name"].to_list()
        assert {"auth_source", "external_issuer", "external_subject"} <= set(columns)
        # a local account made after the upgrade is local too
        auth.create_user(store, "newuser", "New", "analyst", "another-long-password")
        assert store.user("newuser")["auth_source"] == "local"  # type: ignore[index]
