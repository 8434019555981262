"""`placeharm migrate-store` (issue 17): the demo store moved into PostgreSQL holds every
row, serves the same pages, keeps its audit chain; a failure leaves the target as it was."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from placeharm import audit
from placeharm.cli.main import app as cli
from placeharm.config import load_settings
from placeharm.errors import StoreError
from placeharm.services import integrity
from placeharm.services.migrate_store import migrate_store
from placeharm.store.postgres import PostgresStore
from placeharm.web.app import create_app

from .conftest import sign_in

WARD = "E05001111"  # Westgate, Newcastle: has SOC records in the demo overlay
PAGES = (
    "/api/overview?from=2021-11&to=2022-03",
    f"/api/ward/{WARD}?from=2021-11&to=2022-03",
    "/api/records?kind=crimes&page_size=200",
    "/api/records?kind=nominals&page_size=200",
)


@pytest.fixture
def target(pg_url: str) -> Any:
    """An empty schema on the test server: (its URL, a function giving its tables' rows)."""
    from pg_server import drop_schema, new_schema

    schema, url = new_schema(pg_url)

    def rows() -> dict[str, int]:
        with psycopg.connect(url) as con:
            tables = [
                r[0]
                for r in con.execute(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()"
                ).fetchall()
            ]
            return {
                t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0])  # type: ignore[index]
                for t in tables
            }

    yield url, rows
    drop_schema(pg_url, schema)


def _duckdb_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
            ).fetchall()
        ]
        return {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}  # type: ignore[index]


def _pages(client: TestClient, role: str) -> dict[str, Any]:
    cookie = sign_in(client, role)
    out = {}
    for url in PAGES:
        client.cookies.clear()
        response = client.get(url, cookies=cookie)
        assert response.status_code in (200, 403), (url, response.text[:300])
        out[url] = (response.status_code, response.json())
    return out


def test_the_demo_store_moves_whole_and_serves_the_same_pages(
    pristine_db: Path, tmp_path: Path, target: Any
) -> None:
    url, rows = target
    source = tmp_path / "source.duckdb"
    shutil.copy(pristine_db, source)
    report = migrate_store(source, url)

    expected = _duckdb_counts(source)
    assert report.source_rows == expected
    assert report.target_rows == expected
    held = rows()
    assert {t: held[t] for t in expected} == expected  # every table, every row
    assert set(held) - set(expected) == {"store_generation"}  # PostgreSQL's own counter
    assert expected["crimes"] > 50_000 and expected["audit_log"] > 0 and expected["users"] == 7

    # `placeharm check` and the audit chain, on the moved store as any process opens it
    with PostgresStore(url) as moved:
        checked = integrity.check(moved, False, None)
        assert checked.ok, (checked.failures, checked.audit_problem)
        assert checked.audit_entries == expected["audit_log"]
        verdict = audit.verify(moved)
        assert verdict.ok and verdict.checked == expected["audit_log"]

    # the same pages, figure for figure, for a role that sees people and one that does not
    with (
        TestClient(create_app(load_settings(db=source))) as on_duckdb,
        TestClient(create_app(load_settings(db=url))) as on_postgres,
    ):
        for role in ("analyst", "partner"):
            expected_pages = _pages(on_duckdb, role)
            assert _pages(on_postgres, role) == expected_pages, role
            if role == "analyst":  # every page shown, with its records
                assert all(code == 200 for code, _ in expected_pages.values())
                assert len(expected_pages[PAGES[2]][1]["tables"]["records"]) == 200


def test_a_target_with_data_is_refused_and_left_as_it_was(
    pristine_db: Path, target: Any, pg_url: str
) -> None:
    url, rows = target
    with psycopg.connect(url, autocommit=True) as con:
        con.execute("CREATE TABLE notes (body VARCHAR)")
        con.execute("INSERT INTO notes VALUES ('kept')")
    with pytest.raises(StoreError, match="not a placeharm store"):
        migrate_store(pristine_db, url)
    assert rows() == {"notes": 1}


def test_a_failure_mid_way_leaves_the_target_empty(
    pristine_db: Path, tmp_path: Path, target: Any
) -> None:
    """A row PostgreSQL refuses (a duplicate key in `coverage`, copied after the areas and
    the audit log): the rows already copied and the schema roll back with it."""
    url, rows = target
    source = tmp_path / "bad.duckdb"
    shutil.copy(pristine_db, source)
    with duckdb.connect(str(source)) as con:  # the same table without its key, one row twice
        con.execute("CREATE TABLE coverage_copy AS SELECT * FROM coverage")
        con.execute("INSERT INTO coverage_copy SELECT * FROM coverage LIMIT 1")
        con.execute("DROP TABLE coverage")
        con.execute("ALTER TABLE coverage_copy RENAME TO coverage")
    with pytest.raises(StoreError, match=r"copying table coverage .*target is as it was"):
        migrate_store(source, url)
    assert rows() == {}  # not even the schema


def test_a_value_the_copy_cannot_write_is_a_message_and_leaves_the_target_empty(
    pristine_db: Path, tmp_path: Path, target: Any
) -> None:
    """Not only the server's refusals: a column the COPY writer cannot encode (here a list,
    which no placeharm table holds) ends in the same message, never a traceback."""
    url, rows = target
    source = tmp_path / "odd.duckdb"
    shutil.copy(pristine_db, source)
    with duckdb.connect(str(source)) as con:  # coverage rebuilt without its key
        con.execute("CREATE TABLE coverage_copy AS SELECT * FROM coverage")
        column = con.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'coverage' AND data_type = 'VARCHAR' LIMIT 1"
        ).fetchone()[0]  # type: ignore[index]
        con.execute(
            f'ALTER TABLE coverage_copy ALTER COLUMN "{column}" TYPE VARCHAR[] USING ["{column}"]'
        )
        con.execute("DROP TABLE coverage")
        con.execute("ALTER TABLE coverage_copy RENAME TO coverage")
    with pytest.raises(StoreError, match=r"copying table coverage .*target is as it was"):
        migrate_store(source, url)
    assert rows() == {}


def test_an_older_store_is_refused_with_what_to_do(
    pristine_db: Path, tmp_path: Path, target: Any
) -> None:
    url, rows = target
    source = tmp_path / "old.duckdb"
    shutil.copy(pristine_db, source)
    with duckdb.connect(str(source)) as con:
        con.execute("DELETE FROM schema_migrations WHERE version = 11")
    with pytest.raises(StoreError, match=r"older than this placeharm's.*placeharm check --db"):
        migrate_store(source, url)
    assert rows() == {}


def test_the_command_masks_the_password_and_prints_both_counts(
    pristine_db: Path, target: Any
) -> None:
    url, rows = target
    # the test server trusts loopback: a password in the URL is accepted and must not show
    secret = url.replace("postgresql://postgres@", "postgresql://postgres:Hunter2-secret@")
    result = CliRunner().invoke(cli, ["migrate-store", "--from", str(pristine_db), "--to", secret])
    assert result.exit_code == 0, result.output
    assert "Hunter2-secret" not in result.output
    assert "postgres:***@" in result.output
    assert "Every table's count matches" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("│ crimes "))
    count = _duckdb_counts(pristine_db)["crimes"]
    assert line.count(f"{count:,}") == 2  # source and target
    # the planner's statistics are gathered after the commit (COPY leaves none)
    with psycopg.connect(url) as con:
        planned = con.execute(
            "SELECT reltuples FROM pg_class WHERE oid = 'crimes'::regclass"
        ).fetchone()
    assert planned is not None and int(planned[0]) == count
    # libpq's other place for a password, a URL parameter, is masked too
    again = CliRunner().invoke(
        cli, ["migrate-store", "--from", str(pristine_db), "--to", f"{url}&password=Hunter3-pw"]
    )
    assert isinstance(again.exception, StoreError)  # `placeharm` exits 5 with its message
    assert "already holds data" in str(again.exception)
    assert "password=***" in again.output
    assert "Hunter3-pw" not in again.output + str(again.exception)
    assert rows()["crimes"] == count  # the first move, untouched
