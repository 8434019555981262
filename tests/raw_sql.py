"""Raw SQL on a store's place, as someone with direct access to the database could run it
(tests of tamper detection and of what a failure leaves): `place` is what `db_at` gives, a
DuckDB file's path or a postgresql:// URL of a schema of its own. The statements run in one
transaction."""

from __future__ import annotations

from typing import Any

from placeharm.store import is_server_url


def run_sql(place: str, *statements: str) -> None:
    """Run `statements` on the store at `place`, in order, in one transaction."""
    if is_server_url(place):
        import psycopg

        with psycopg.connect(place) as con:  # commits when the block ends
            for statement in statements:
                con.execute(statement)  # type: ignore[arg-type]  # tests' own SQL
        return
    import duckdb

    con = duckdb.connect(place)
    try:
        con.execute("BEGIN")
        for statement in statements:
            con.execute(statement)
        con.execute("COMMIT")
    finally:
        con.close()


def query(place: str, statement: str) -> list[tuple[Any, ...]]:
    """The rows of one query on the store at `place`."""
    if is_server_url(place):
        import psycopg

        with psycopg.connect(place) as con:
            return list(con.execute(statement).fetchall())  # type: ignore[arg-type]
    import duckdb

    with duckdb.connect(place, read_only=True) as con:
        return list(con.execute(statement).fetchall())
