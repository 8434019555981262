"""Moving a DuckDB store's rows into a PostgreSQL store (`placeharm migrate-store`, issue 17).

The tables are read from the source's own catalogue, not from a list written here, so a table
a later migration adds is moved without a change to this module. Rows travel by COPY in
batches (DuckDB hands Arrow batches, polars writes them as CSV, psycopg's `copy` streams them).
Every step runs inside the caller's transaction on the target (`PostgresStore.transaction`):
a failure anywhere leaves the target as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from placeharm.errors import StoreError
from placeharm.store.duckdb import store_error
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS
from placeharm.store.pg_migrations import ROWID_TABLES
from placeharm.store.postgres import PostgresStore, _redact

# Tables only the PostgreSQL store has: the shared generation counter (pg_migrations._EXTRA).
PG_ONLY_TABLES = ("store_generation",)
# The table recording which migrations were applied: both stores have it; the source's rows
# replace the target's, so the moved store keeps when each version was first applied.
MIGRATIONS_TABLE = "schema_migrations"
# What a text value holding NUL (which PostgreSQL text cannot hold) gets instead, as
# `PostgresStore.add_quarantine` does on import.
NUL_REPLACEMENT = "\ufffd"


def _quoted(name: str) -> str:
    """A table or column name from a store's own catalogue, quoted as an identifier (the
    only text this module writes into SQL; every value is a parameter or COPY data)."""
    return '"' + name.replace('"', '""') + '"'


@contextmanager
def open_source(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The source store file, read-only, at this placeharm's schema version (an older store
    is refused with what to do: it cannot be upgraded while opened read-only)."""
    if not path.is_file():
        raise StoreError(f"no store file at {path}; give the DuckDB store to move with --from")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError) as exc:
        raise store_error(exc, str(path)) from exc
    try:
        con.execute("SET threads = 2")
        con.execute("SET memory_limit = '1GB'")
        con.execute("SET enable_progress_bar = false")
        tables = source_tables(con)
        if MIGRATIONS_TABLE not in tables:
            raise StoreError(f"{path.name} is a DuckDB file but not a placeharm store")
        done = {int(r[0]) for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
        version = max(done, default=0)
        if version > LATEST_VERSION:
            raise StoreError(
                f"the store {path} has schema version {version}, newer than this placeharm "
                f"understands ({LATEST_VERSION}); move it with the placeharm that wrote it"
            )
        if any(v not in done for v, _, _ in MIGRATIONS):
            raise StoreError(
                f"the store {path} has schema version {version}, older than this placeharm's "
                f"({LATEST_VERSION}). Upgrade it first: `placeharm check --db {path}` opens it "
                "with write access, which applies the migrations (back it up before, with "
                "`placeharm backup`); then run migrate-store again."
            )
        yield con
    finally:
        con.close()


def source_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The source's base tables, by name."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _source_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [(str(n), str(t)) for n, t in rows]


def source_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows per table in the source."""
    out = {}
    for table in source_tables(con):
        row = con.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()  # noqa: S608
        out[table] = int(row[0]) if row else 0
    return out


def target_tables(target: PostgresStore) -> list[str]:
    rows = target._run(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' "
        "ORDER BY table_name"
    )
    return [str(r[0]) for r in rows]


def target_counts(target: PostgresStore, tables: list[str]) -> dict[str, int]:
    """Rows per table in the target (inside the caller's transaction: its own writes too)."""
    out = {}
    for table in tables:
        row = target._one(f"SELECT count(*) FROM {_quoted(table)}")  # noqa: S608
        out[table] = int(row[0]) if row else 0
    return out


def target_rows(target: PostgresStore) -> dict[str, int]:
    """Rows in each of the target schema's tables that hold data (not the migration record
    or the generation counter): all zero for a store that may be written into."""
    tables = [t for t in target_tables(target) if t not in (MIGRATIONS_TABLE, *PG_ONLY_TABLES)]
    return target_counts(target, tables)


def refuse_unless_empty(target: PostgresStore) -> None:
    """A StoreError unless the target's schema holds no rows of data: nothing at all, or an
    empty placeharm store (as the first `placeharm` run against a database makes)."""
    tables = target_tables(target)
    if tables and MIGRATIONS_TABLE not in tables:
        shown = ", ".join(tables[:8]) + (", ..." if len(tables) > 8 else "")
        raise StoreError(
            f"the target {target.path} has tables that are not a placeharm store ({shown}); "
            "migrate-store writes only into an empty database or schema. Create one "
            "(`createdb placeharm`) and name it in --to."
        )
    held = {t: n for t, n in target_rows(target).items() if n}
    if held:
        shown = ", ".join(f"{t} {n:,} rows" for t, n in sorted(held.items())[:6])
        raise StoreError(
            f"the target {target.path} already holds data ({shown}); migrate-store writes "
            "only into an empty store and never merges. Name an empty database or schema in "
            "--to (nothing was written)."
        )


def lock_target(target: PostgresStore) -> None:
    """Hold every table of the target until commit, so no app process writes into it while
    the rows move (readers wait too: the store is not in use yet)."""
    tables = target_tables(target)
    if tables:
        target._exec(f"LOCK TABLE {', '.join(_quoted(t) for t in tables)} IN EXCLUSIVE MODE")


def _target_columns(target: PostgresStore, table: str) -> set[str]:
    return set(target._column_types(table)) - {"rowid"}


def _batches(con: duckdb.DuckDBPyConnection, table: str, batch_rows: int) -> Iterator[pl.DataFrame]:
    """A source table's rows as frames of at most `batch_rows`, in the order DuckDB stored
    them (its `rowid`), so a PostgreSQL `rowid` identity numbers them in the same order."""
    select = []
    for name, dtype in _source_columns(con, table):
        col = _quoted(name)
        # JSON travels as its text (PostgreSQL parses it into its own json column)
        select.append(f"CAST({col} AS VARCHAR) AS {col}" if dtype == "JSON" else col)
    order = " ORDER BY rowid" if table in ROWID_TABLES else ""
    relation = con.sql(f"SELECT {', '.join(select)} FROM {_quoted(table)}{order}")  # noqa: S608
    for batch in relation.to_arrow_reader(batch_rows):
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        yield frame


def _without_nul(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Text values with NUL (which PostgreSQL text cannot hold) with U+FFFD in its place, and
    how many values that changed."""
    texts = [c for c, t in frame.schema.items() if t == pl.String]
    if not texts:
        return frame, 0
    changed = frame.select(
        pl.sum_horizontal(pl.col(c).str.contains("\x00", literal=True).fill_null(False).sum())
        for c in texts
    )
    count = int(changed.sum_horizontal().item()) if changed.width else 0
    if not count:
        return frame, 0
    fixed = frame.with_columns(
        pl.col(c).str.replace_all("\x00", NUL_REPLACEMENT, literal=True) for c in texts
    )
    return fixed, count


def copy_tables(
    con: duckdb.DuckDBPyConnection,
    target: PostgresStore,
    batch_rows: int = 100_000,
    progress: Callable[[str, int], None] | None = None,
) -> int:
    """COPY every source table's rows into the target's table of the same name (the
    target's schema already migrated, inside the caller's transaction). Area columns are
    added once the area sets are in. Returns how many text values held NUL (replaced)."""
    tables = source_tables(con)
    missing = [t for t in tables if t not in target_tables(target)]
    if missing:
        raise StoreError(
            f"the target {target.path} has no table {', '.join(missing)} that the source has: "
            "the two placeharm versions differ; move the store with the same placeharm"
        )
    # the area sets first: their rows name the area columns the record tables carry
    ordered = sorted(tables, key=lambda t: (t != "area_sets", t))
    target._run(f"DELETE FROM {MIGRATIONS_TABLE}")  # noqa: S608
    nul = 0
    for table in ordered:
        columns = [n for n, _ in _source_columns(con, table)]
        lacking = [c for c in columns if c not in _target_columns(target, table)]
        if lacking:
            raise StoreError(
                f"the target's table {table} has no column {', '.join(lacking)}: the two "
                "placeharm versions differ; move the store with the same placeharm"
            )
        moved = 0
        for frame in _batches(con, table, batch_rows):
            frame, changed = _without_nul(frame)
            nul += changed
            try:
                target._copy(_quoted(table), frame)
            # not only the server's refusals: a value the COPY writer cannot encode (polars,
            # a type this placeharm does not know) ends in the same message, never a traceback
            except Exception as exc:
                detail = _redact(str(exc).strip()).splitlines()
                raise StoreError(
                    f"copying table {table} into {target.path} failed after {moved:,} of its "
                    f"rows: {'; '.join(detail[:3])}. Nothing was written: the target is as "
                    "it was."
                ) from exc
            moved += frame.height
        target._local.wrote = True
        if table == "area_sets":  # each set's area column on every record table
            target._add_area_columns()
        if progress is not None:
            progress(table, moved)
    _set_sequences(con, target)
    return nul


def _set_sequences(con: duckdb.DuckDBPyConnection, target: PostgresStore) -> None:
    """Every sequence of the source continues in the target where it stopped (an import id
    is never given twice)."""
    rows = con.execute(
        "SELECT sequence_name, last_value FROM duckdb_sequences() WHERE schema_name = 'main'"
    ).fetchall()
    for name, last_value in rows:
        if last_value is None:  # never used: the target's starts where the source's would
            continue
        target._exec("SELECT setval(?, ?, true)", [str(name), int(last_value)])
