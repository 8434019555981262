"""Stores: all SQL lives here. `Store` is the interface; `DuckDBStore` the embedded engine,
`PostgresStore` the server engine (issue 17), chosen by the `db` setting."""

from __future__ import annotations

from pathlib import Path

from placeharm.store.base import Store
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.postgres import PostgresStore

# either engine, where code holds the store it opened (the `Store` protocol is what services use)
AnyStore = DuckDBStore | PostgresStore
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_server_url(db: Path | str) -> bool:
    """Whether the `db` setting names a PostgreSQL server rather than a DuckDB file."""
    return isinstance(db, str) and db.startswith(POSTGRES_SCHEMES)


def open_db(
    db: Path | str, threads: int = 2, memory_limit: str = "1GB", read_only: bool | None = None
) -> DuckDBStore | PostgresStore:
    """The store the `db` setting names: a PostgreSQL URL opens `PostgresStore`, anything
    else is the path of a DuckDB file (the default)."""
    if is_server_url(db):
        return PostgresStore(str(db), read_only=read_only)
    return DuckDBStore(db, threads=threads, memory_limit=memory_limit, read_only=read_only)


__all__ = ["AnyStore", "DuckDBStore", "PostgresStore", "Store", "is_server_url", "open_db"]
