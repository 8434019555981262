"""The server store: PostgreSQL 15+ through psycopg 3 (issue 17). All its SQL lives here (and
in pg_migrations.py), but for the methods both engines run alike, in sqlstore.py (`SqlStore`).

The same behaviour as `DuckDBStore`: each file one transaction (records, history, quarantine,
import log and the harm cube's cells commit together or not at all), snapshots per page,
the append-only audit log. What differs is the engine's:

- Values always travel as parameters (psycopg binds them server-side); frames travel by
  COPY into the target table (columns by name: a column the table lacks fails, nothing is
  dropped) or into a temporary table a statement joins, never as SQL text.
- The 64-bit join hashes (UInt64 in polars, UBIGINT in DuckDB) are stored as the same bits in
  a signed BIGINT and reinterpreted on the way in and out.
- DuckDB's built-in `rowid` is a `rowid` identity column (pg_migrations.ROWID_TABLES).
- `generation` is a counter in the database (`store_generation`), added to in every
  transaction that writes page data, so every app process sharing the server sees a change;
  while the process LISTENs for the notice each such commit sends, it is read from memory
  (`listen`, which reconnects after a lost connection).
- Writes that recount the harm cube take a transaction-level advisory lock first, so two
  processes importing at once recount in turn, each seeing the other's committed rows.

Methods that PostgreSQL does not support yet raise `StoreError` with a plain message (see
`NOT_YET`); docs/deploy.md lists them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Literal

import polars as pl
import psycopg
import pyarrow as pa
from psycopg.conninfo import make_conninfo

from placeharm.errors import DataError, StoreClosed, StoreError, StoreUnavailable, store_closed
from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow, check_area_set_name
from placeharm.store.base import AUDIT_COLUMNS, CELLS_CHECK, EVERYTHING, Scope
from placeharm.store.duckdb import (
    _CRIME_HISTORY_COLS,
    _MOPI,
    _SOC_DATED,
    _SOC_FLAGS,
    _WRITES_DATA,
    DuckDBStore,
    _records_where,
    _scoped,
)
from placeharm.store.pg_migrations import LATEST_VERSION, PG_MIGRATIONS
from placeharm.store.sqlstore import (
    _HASHED,
    RECORD_TABLES,
    SOC_LOCATED_TABLES,
    SOC_TABLES,
    SqlStore,
    _area_col,
    _safe_col,
    _table,
)

log = logging.getLogger(__name__)

# The migration that made the harm cube's table, filled in the same transaction (issue 14).
_CELLS_MIGRATION = 11
# Columns holding 64-bit join hashes (UInt64 in frames, the same bits as BIGINT in tables).
_HASH_COLUMNS = ("crime_hash", "search_hash")
# The channel a commit that changed page data notifies (LISTEN/NOTIFY): app processes
# sharing the database refresh their pages when another one imports.
CHANGED_CHANNEL = "placeharm_changed"
# A generation kept in memory while listening is read again after this many seconds even with
# no notice: a LISTEN connection that died without a reset (a firewall's idle timeout, a
# half-open socket after a failover) hears nothing, and pages must not stay stale for the
# hours TCP takes to notice. TCP keepalives on that connection (below) make it reconnect.
GENERATION_MAX_AGE_S = 5.0
_LISTEN_KEEPALIVES: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
# The advisory lock a transaction takes before recounting the harm cube.
_CELLS_LOCK = 0x706C6163  # "plac"
# ... and the one an audit append takes, so processes chain their entries in turn
_AUDIT_LOCK = _CELLS_LOCK + 2
# ... the one sign-in throttling takes to count a failure (issue 17)
_THROTTLE_LOCK = _CELLS_LOCK + 3
# ... and the one a server process holds while it watches the drop folder (one process per
# store does). It is taken with the store's schema as its second key: advisory locks belong
# to the database, and stores in two schemas of one database each have their own drop folder.
DROP_FOLDER_LOCK = _CELLS_LOCK + 4
# A lost LISTEN connection is made again after this wait, doubling up to the most.
LISTEN_RETRY_S = 0.5
LISTEN_RETRY_MAX_S = 30.0

# PostgreSQL type oids and the polars types their values become
_OIDS: dict[int, pl.DataType | None] = {
    16: pl.Boolean(),
    17: pl.Binary(),
    19: pl.String(),
    20: pl.Int64(),
    21: pl.Int16(),
    23: pl.Int32(),
    25: pl.String(),
    114: pl.String(),
    700: pl.Float32(),
    701: pl.Float64(),
    1042: pl.String(),
    1043: pl.String(),
    1082: pl.Date(),
    1114: pl.Datetime("us"),
    1184: pl.Datetime("us", "UTC"),
    1700: pl.Float64(),
    3802: pl.String(),
}

# Methods of the Store protocol the PostgreSQL store does not implement yet: each raises a
# StoreError saying so (never a traceback at an entry point: boundaries turn it into a message).
NOT_YET = ("backup",)


def _not_yet(what: str) -> StoreError:
    return StoreError(
        f"{what} is not supported on a PostgreSQL store yet (issue 17): use a DuckDB "
        "store for it (docs/deploy.md, PostgreSQL)"
    )


@functools.lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """A statement written with `?` placeholders (as DuckDB's) in psycopg's `%s` style: `%`
    is doubled and `?` outside quoted literals becomes `%s`."""
    out: list[str] = []
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


# DuckDB's list test as `_scoped` (store.duckdb) writes it, in PostgreSQL's words: the
# scope's conditions are written once and read by both engines.
_LIST_CONTAINS = re.compile(r"list_contains\((\?::VARCHAR\[\]), ([^()]+)\)")


def _pg_where(clause: str) -> str:
    clause = _LIST_CONTAINS.sub(r"(\2 = ANY(\1))", clause)
    return clause.replace(" AS VARCHAR) ILIKE ?", f" AS VARCHAR) {_FOLD_CASE} ILIKE ?")


# Case-insensitive matching (ILIKE, lower()) in the database's own collation: the store's
# text columns are COLLATE "C" for DuckDB's byte order (migration 16), and in "C" PostgreSQL
# folds only ASCII letters, so a search for "école" would miss "ÉCOLE" (DuckDB finds it)
_FOLD_CASE = 'COLLATE "default"'


def _param(value: object) -> object:
    if isinstance(value, pl.Series):
        return value.to_list()
    return value


def _pg_type(dtype: pl.DataType) -> str:
    """The PostgreSQL type a temporary table holds a polars column in."""
    if dtype in (pl.Int64, pl.UInt64, pl.UInt32):
        return "BIGINT"
    if dtype in (pl.Int32, pl.Int16, pl.Int8, pl.UInt16, pl.UInt8):
        return "INTEGER"
    if dtype in (pl.Float64, pl.Float32):
        return "DOUBLE PRECISION"
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if dtype == pl.Date:
        return "DATE"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"
    if dtype == pl.Binary:
        return "BYTEA"
    return _TEXT


# Text in byte order, as DuckDB's (pg_migrations.TEXT_IN_BYTE_ORDER): the type of every text
# column the store adds itself (an area set's code column, a temporary table's text)
_TEXT = 'VARCHAR COLLATE "C"'


def _in_byte_order(data_type: str | None) -> str | None:
    """A table column's type (information_schema's data_type) for a temporary table's column
    like it: text in byte order, as the store's own text columns."""
    return _TEXT if data_type in ("character varying", "text") else data_type


def _without_nul(data: str) -> str:
    """PostgreSQL text cannot hold NUL: a COPY's CSV (`_copy`) keeps every other character of
    any text written (a message quoting a file's own bytes, a raw line), and a NUL as U+FFFD.

    Only text can hold a NUL in that CSV (numbers and dates cannot; bytes go as hex), and
    neither NUL nor U+FFFD changes how polars quotes a field, so replacing it in the CSV is
    replacing it in every text column. On every COPY (the hot path) this is one search of the
    CSV text, and a copy of it only when a NUL is there, which real files almost never hold
    (bench/pg_copy_nul.py: a replace_all over every text column cost about 3% of a COPY)."""
    return data.replace("\x00", "\ufffd") if "\x00" in data else data


def _signed(frame: pl.DataFrame) -> pl.DataFrame:
    """UInt64 columns (join hashes) as the same bits in Int64, as the tables hold them."""
    unsigned = [c for c, t in frame.schema.items() if t == pl.UInt64]
    if not unsigned:
        return frame
    return frame.with_columns(pl.col(c).reinterpret(signed=True) for c in unsigned)


def _col(name: str) -> str:
    """A frame's column name quoted for SQL: a checked identifier, or the row id `_rid`."""
    return '"_rid"' if name == "_rid" else _safe_col(name)


def _quoted_name(name: str) -> str:
    """A table name read from the catalogue, as an SQL identifier (its quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def _redact(url: str) -> str:
    """A connection URL without its password (in the user part, or libpq's `password=`
    parameter), for messages and logs."""
    url = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url, flags=re.IGNORECASE)


def _to_frame(description: Sequence[psycopg.Column], rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    """Rows as a frame with the columns' types (also when there are none); the join hashes
    back as UInt64; a table's `rowid` dropped (asked for by another name, `_rid`, as in
    DuckDB, whose `*` never includes it)."""
    # arrays (and any type not listed) as polars infers them from the values
    schema = {d.name: _OIDS.get(d.type_code) for d in description}
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    frame = pl.DataFrame(
        [
            pl.Series(name, list(values), dtype=dtype, strict=False)
            for (name, dtype), values in zip(schema.items(), columns, strict=True)
        ]
    )
    hashes = [c for c in _HASH_COLUMNS if frame.schema.get(c) == pl.Int64]
    if hashes:
        frame = frame.with_columns(pl.col(c).reinterpret(signed=False) for c in hashes)
    return frame.drop("rowid", strict=False)


class PostgresStore(SqlStore):
    """A placeharm store in a PostgreSQL database, chosen by `PLACEHARM_DB=postgresql://...`.

    Each thread gets its own connection (autocommit outside `transaction()`), so readers run
    in parallel and several processes may share the database.
    """

    engine = "postgresql"

    def __init__(self, url: str, read_only: bool | None = None, migrate: bool = True) -> None:
        self.path = _redact(url)  # what messages name; never the password
        self._url = url
        self.read_only = bool(read_only)
        self._local = threading.local()
        # every connection this store opened, with the thread it serves (None: one the store
        # keeps for itself until it closes, e.g. the drop-folder lock). A thread that ended
        # (the web server's pool stops idle threads) leaves its connection here: the next
        # connection made closes those, so a long-running worker holds about one connection
        # per live thread, not one per thread it ever had.
        self._conns: list[tuple[threading.Thread | None, psycopg.Connection[tuple[Any, ...]]]] = []
        self._conns_lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        # `generation` from memory while listening (issue 17)
        self._gen_lock = threading.Lock()
        self._gen_cached: int | None = None
        self._gen_cached_at = 0.0  # time.monotonic() of the read kept
        self._gen_epoch = 0
        self._live_listens = 0
        # after close(): every use raises StoreClosed, as DuckDBStore's; no connection is
        # opened again (a thread's, the LISTEN thread's, an export's or a lock's)
        self._closed = False
        self._connect()  # now: a wrong URL fails here, with a message
        if self.read_only:
            self._check_read_only_schema()
        elif migrate:  # migrate=False: the caller migrates inside its own transaction
            self.migrate()

    # -- lifecycle -------------------------------------------------------------------------

    def _connect(self) -> None:
        self._con.execute("SELECT 1")

    @property
    def _con(self) -> psycopg.Connection[tuple[Any, ...]]:
        con: psycopg.Connection[tuple[Any, ...]] | None = getattr(self._local, "con", None)
        if self._closed:
            raise store_closed(self.path)
        if con is None or con.closed:
            try:
                con = psycopg.connect(self._url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreUnavailable(
                    f"cannot connect to the PostgreSQL store {self.path}: "
                    f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else exc!r}. "
                    "Check PLACEHARM_DB (host, port, database, user) and that the server runs."
                ) from exc
            # timestamps are stored and compared in UTC, as DuckDB's
            con.execute("SET TIME ZONE 'UTC'")
            self._keep(con, threading.current_thread())
            self._local.con = con
        return con

    def _keep(
        self, con: psycopg.Connection[tuple[Any, ...]], thread: threading.Thread | None
    ) -> None:
        """Hold `con` until the store closes; a store closed meanwhile closes it and refuses."""
        with self._conns_lock:
            if self._closed:
                with suppress(psycopg.Error):
                    con.close()
                raise store_closed(self.path)
            self._close_orphans()
            self._conns.append((thread, con))

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended (under `_conns_lock`)."""
        kept = []
        for thread, con in self._conns:
            if thread is None or thread.is_alive():
                kept.append((thread, con))
            else:
                with suppress(psycopg.Error):
                    con.close()
        self._conns = kept

    def open_connections(self) -> int:
        """How many connections this store holds open (threads' and its own)."""
        with self._conns_lock:
            return sum(1 for _, con in self._conns if not con.closed)

    def listen(self, changed: Callable[[], None]) -> Callable[[], None]:
        """Call `changed()` (from a thread of its own) after every commit, by any process,
        that changed page data; returns the function that stops listening. Its own
        connection waits on PostgreSQL's LISTEN, so nothing polls the tables.

        A lost connection (a server restart, a terminated backend, a network cut) is made
        again, waiting `LISTEN_RETRY_S` doubling up to `LISTEN_RETRY_MAX_S` between tries; a
        commit made meanwhile sent its notice to nobody, so every reconnection counts as a
        change. While listening, `generation` is answered from memory (see there)."""
        # the first at once: a wrong URL fails here
        con: psycopg.Connection[tuple[Any, ...]] | None
        con, schema = self._listen_connection()
        stop = threading.Event()

        def tell() -> None:
            try:
                changed()
            except Exception:  # the listener's failure: logged, and listening goes on
                log.exception("refreshing after a change on %s failed", self.path)

        def run() -> None:
            nonlocal con, schema
            wait = LISTEN_RETRY_S
            while not stop.is_set():
                if con is None:
                    try:
                        con, schema = self._listen_connection()
                    except StoreClosed:
                        return  # the store closed while this thread waited to reconnect
                    except StoreUnavailable:
                        stop.wait(wait)
                        wait = min(wait * 2, LISTEN_RETRY_MAX_S)
                        continue
                    log.warning("listening for changes on %s again", self.path)
                    wait = LISTEN_RETRY_S
                    self._heard()
                    tell()  # what was committed while deaf is unknown: refresh
                try:
                    self._listening(+1)
                    try:
                        while not stop.is_set():
                            for notice in con.notifies(timeout=1.0, stop_after=1):
                                if notice.payload not in ("", schema):
                                    continue  # another store in the same database
                                self._heard()
                                if not stop.is_set():
                                    tell()
                    finally:
                        self._listening(-1)
                except psycopg.Error as exc:
                    if not stop.is_set():
                        # the class of the failure only: its text may name the server
                        log.warning(
                            "lost the connection listening for changes on %s (%s); reconnecting",
                            self.path,
                            type(exc).__name__,
                        )
                except BaseException:
                    log.exception("listening for changes on %s stopped", self.path)
                    raise
                finally:
                    with suppress(psycopg.Error):
                        con.close()
                    con = None

        thread = threading.Thread(target=run, name="placeharm-listen", daemon=True)

        def close() -> None:
            stop.set()
            if thread.is_alive():
                thread.join(5)

        with self._conns_lock:
            if self._closed:  # closed since the first connection was made
                with suppress(psycopg.Error):
                    con.close()
                raise store_closed(self.path)
            self._listeners.append(close)  # closing the store stops it too
        thread.start()
        return close

    def _listen_connection(self) -> tuple[psycopg.Connection[tuple[Any, ...]], str]:
        """A connection of its own that LISTENs on the change channel, and the store's
        schema (what its notices carry)."""
        if self._closed:
            raise store_closed(self.path)
        try:
            con = psycopg.connect(
                make_conninfo(self._url, **_LISTEN_KEEPALIVES),
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(
                f"cannot listen for changes on the PostgreSQL store {self.path}"
            ) from exc
        try:
            row = con.execute("SELECT current_schema()").fetchone()
            con.execute(f"LISTEN {CHANGED_CHANNEL}")
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                con.close()
            raise StoreUnavailable(
                f"cannot listen for changes on the PostgreSQL store {self.path}"
            ) from exc
        return con, str(row[0]) if row else ""

    def _listening(self, step: int) -> None:
        """One more (or one fewer) live LISTEN connection; with none, `generation` asks the
        database every time."""
        with self._gen_lock:
            self._live_listens += step
            self._gen_epoch += 1
            self._gen_cached = None

    def _heard(self) -> None:
        """A commit may have changed the generation: the next read asks the database."""
        with self._gen_lock:
            self._gen_epoch += 1
            self._gen_cached = None

    @property
    def generation(self) -> int:
        """A number that changes whenever committed data a page may show changes (records,
        areas, coverage, populations, harm indices; not sessions, users or the audit log).
        Kept in the database, so every process sharing it sees every other's writes.

        While a LISTEN connection is live (`listen`), the value read is kept in memory and
        dropped when a notice arrives (every commit that adds to it sends one), or when
        this process commits, and read again after GENERATION_MAX_AGE_S whatever happens (a
        connection that died silently hears no notice); so most page reads cost no query.
        A value may lag a commit by the notice's delivery (at most GENERATION_MAX_AGE_S if
        the notice is lost), never lead it: a read that began before a notice is not
        kept (`_gen_epoch`). Inside a transaction, or with no live LISTEN connection, the
        database is asked every time."""
        if self._in_tx or not self._live_listens:
            return self._read_generation()
        with self._gen_lock:
            cached, epoch = self._gen_cached, self._gen_epoch
            fresh = time.monotonic() - self._gen_cached_at < GENERATION_MAX_AGE_S
        if cached is not None and fresh:
            return cached
        started = time.monotonic()
        value = self._read_generation()
        with self._gen_lock:
            if self._gen_epoch == epoch and self._live_listens:
                self._gen_cached, self._gen_cached_at = value, started
        return value

    def _read_generation(self) -> int:
        row = self._one("SELECT generation FROM store_generation WHERE id = 1")
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close every connection and stop the LISTEN threads; the store cannot be used
        again (StoreClosed). Closing twice does nothing more."""
        with self._conns_lock:
            self._closed = True
            listeners, self._listeners = self._listeners, []
        for stop in listeners:
            stop()
        with self._conns_lock:
            for _, con in self._conns:
                with suppress(psycopg.Error):
                    con.close()
            self._conns.clear()

    def schema_version(self) -> int:
        if not self._table_exists("schema_migrations"):
            return 0
        row = self._one("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    def _table_exists(self, name: str) -> bool:
        row = self._one(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [name],
        )
        return bool(row and row[0])

    def migrate(self) -> list[int]:
        """Apply every migration the database has not recorded, each in its own transaction.
        An advisory lock lets one process migrate while others starting at once wait."""
        with self.transaction():
            self._exec("SELECT pg_advisory_xact_lock(?)", [_CELLS_LOCK + 1])
            self._exec(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
            )
            current = self.schema_version()
            if current > LATEST_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {current}, newer than this "
                    f"placeharm understands ({LATEST_VERSION}); upgrade placeharm"
                )
            done = {int(r[0]) for r in self._run("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, statements in PG_MIGRATIONS:
                if version in done:
                    continue
                try:
                    for statement in statements:
                        self._exec(statement)
                except psycopg.Error as exc:
                    raise _upgrade_failed(self.path, version, name, exc) from exc
                self._local.wrote = True
                self._run(
                    "INSERT INTO schema_migrations VALUES (?, ?, now() AT TIME ZONE 'UTC')",
                    [version, name],
                )
                self._add_area_columns()
                if version == _CELLS_MIGRATION:
                    self.rebuild_crime_cells()
                applied.append(version)
        return applied

    def _check_read_only_schema(self) -> None:
        version = self.schema_version()
        if version != LATEST_VERSION:
            raise StoreUnavailable(
                f"the PostgreSQL store {self.path} has schema version {version}, not this "
                f"placeharm's ({LATEST_VERSION}); open it once with write access to upgrade it"
            )

    def _add_area_columns(self) -> None:
        if not self._table_exists("area_sets"):
            return
        existing = {
            r[0]
            for r in self._run(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
        for (name,) in self._run("SELECT name FROM area_sets"):
            for table in RECORD_TABLES:
                if table in existing:
                    self._run(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {_area_col(name)} {_TEXT}"
                    )

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent read: a REPEATABLE READ transaction sees one committed state for
        all its queries (PostgreSQL's MVCC snapshot). Inside a transaction it joins it."""
        with self.transaction(isolation="REPEATABLE READ"):
            yield

    @contextmanager
    def transaction(self, isolation: str = "READ COMMITTED") -> Iterator[None]:
        """All or nothing: commit at the end, roll back on any exception."""
        if self._in_tx:
            yield
            return
        if isolation not in ("READ COMMITTED", "REPEATABLE READ"):
            raise StoreError(f"unknown isolation level {isolation!r}")
        self._exec(f"BEGIN ISOLATION LEVEL {isolation}")
        self._in_tx = True
        committed = False
        try:
            yield
            self._maintain_cells()  # the harm cube commits with the records it counts
            wrote = bool(getattr(self._local, "wrote", False))
            if wrote:
                self._exec("UPDATE store_generation SET generation = generation + 1")
                # delivered at commit to every process listening (`listen`), never before
                # the payload names the schema: stores sharing a database ignore each other's
                self._exec("SELECT pg_notify(?, current_schema())", [CHANGED_CHANNEL])
        except BaseException:
            with suppress(psycopg.Error):
                self._con.execute("ROLLBACK")
            raise
        else:
            self._exec("COMMIT")
            committed = True
            if wrote:
                self._heard()  # our own commit: the next read sees it at once
        finally:
            self._in_tx = False
            self._local.cells_pending = None
            self._local.wrote = False
            hooks, self._local.hooks = getattr(self._local, "hooks", []), []
            for hook in hooks:
                hook(committed)

    def _exec(self, sql: str, params: list[object] | None = None) -> psycopg.Cursor[Any]:
        """Run one statement as it is (no write bookkeeping), with failures as StoreErrors."""
        if self.read_only and _CHANGES_STORE.match(sql):
            raise _read_only_refusal(self.path)
        try:
            if params is None:  # psycopg reads no placeholders in a statement without values
                return self._con.execute(sql)
            return self._con.execute(_pg_sql(sql), [_param(p) for p in params])
        except psycopg.DataError as exc:
            # psycopg refuses a NUL character before sending it: no stored text holds one
            # (DuckDB's would), so a value with one is bad input, not a failure of the store
            if "NUL" not in str(exc):
                raise
            raise DataError(
                "a value given holds a NUL character (0x00), which no text in the store can "
                "hold; remove it and try again"
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _not_permitted(self.path, exc) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"the PostgreSQL store {self.path} failed: {str(exc).strip()}. Nothing was "
                "written by the statement that failed; check the server and try again."
            ) from exc

    def _wrote(self, sql: str) -> None:
        if _WRITES_DATA.match(sql):
            self._local.wrote = True

    def _run(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch its rows. A write of page data outside a transaction
        runs in one of its own, so the generation counter moves with it."""
        if _WRITES_DATA.match(sql) and not self._in_tx:
            with self.transaction():
                return self._run(sql, params)
        cur = self._exec(sql, params)
        self._wrote(sql)
        return cur.fetchall() if cur.description else []

    def _count(self, sql: str, params: list[object] | None = None) -> int:
        """Run one write and return the rows it touched."""
        if not self._in_tx:
            with self.transaction():
                return self._count(sql, params)
        cur = self._exec(sql, params)
        self._wrote(sql)
        return max(cur.rowcount, 0)

    def _frame(self, sql: str, params: list[object] | None = None) -> pl.DataFrame:
        """A query's rows as a frame with the columns' types (also when it has no rows);
        a table's `rowid` only when asked for by another name (`_rid`), as in DuckDB."""
        cur = self._exec(sql, params)
        assert cur.description is not None
        return _to_frame(cur.description, cur.fetchall())

    # -- frames in: COPY ---------------------------------------------------------------------

    def _copy(self, table: str, frame: pl.DataFrame) -> None:
        """COPY a frame into a table as CSV written by polars (one pass in Rust, not a
        Python loop per row). In PostgreSQL's CSV an unquoted empty field is NULL and a
        quoted one ("", as polars writes an empty string) is empty text; bytes go as hex."""
        if self.read_only and not table.startswith("_"):  # `_name`: a temporary table
            raise _read_only_refusal(self.path)
        frame = _signed(frame)
        binary = [c for c, t in frame.schema.items() if t == pl.Binary]
        if binary:
            frame = frame.with_columns(
                (pl.lit("\\x") + pl.col(c).bin.encode("hex")).alias(c) for c in binary
            )
        cols = ", ".join(_col(c) for c in frame.columns)
        # a text value that is exactly `\.` alone on a line ends PostgreSQL's CSV data (the
        # rows after it silently dropped) unless quoted: only a one-column frame's row can be
        # that line, so there every text is quoted (a NULL stays an unquoted empty field)
        quoting: Literal["non_numeric", "necessary"] = (
            "non_numeric" if frame.width == 1 else "necessary"
        )
        data = _without_nul(
            frame.write_csv(
                include_header=False,
                datetime_format="%Y-%m-%d %H:%M:%S%.6f",
                quote_style=quoting,
            )
        )
        try:
            with (
                self._con.cursor() as cur,
                cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT csv)") as copy,
            ):
                copy.write(data)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise _not_permitted(self.path, exc) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(
                f"the PostgreSQL store {self.path} failed while writing: {str(exc).strip()}"
            ) from exc

    def _insert(self, table: str, frame: pl.DataFrame) -> None:
        """Append a frame's rows to a table, columns by name (a column the table lacks
        fails: nothing is silently dropped)."""
        if not self._in_tx:
            with self.transaction():
                self._insert(table, frame)
            return
        if frame.width == 0:
            return
        self._copy(table, frame)
        self._local.wrote = True

    def _column_types(self, table: str) -> dict[str, str]:
        rows = self._run(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [table],
        )
        return {str(n): str(t) for n, t in rows}

    def _temp(self, name: str, frame: pl.DataFrame, like: str | None = None) -> None:
        """Hold a frame in a temporary table `name` for the statements that join it; its
        columns take the types of table `like`'s columns of the same name."""
        types = self._column_types(like) if like else {}
        cols = ", ".join(
            f"{_col(c)} {_in_byte_order(types.get(c)) or _pg_type(t)}"
            for c, t in frame.schema.items()
        )
        self._exec(f"DROP TABLE IF EXISTS {name}")
        self._exec(f"CREATE TEMPORARY TABLE {name} ({cols})")
        if frame.height:
            self._copy(name, frame)
        self._exec(f"ANALYZE {name}")

    def _untemp(self, name: str) -> None:
        """Drop a temporary table; after a failed statement PostgreSQL refuses even this, and
        the next `_temp` of the name drops it first."""
        try:
            self._exec(f"DROP TABLE IF EXISTS {name}")
        except psycopg.Error:
            log.debug("could not drop %s after a failed statement", name)

    # -- imports and quarantine -------------------------------------------------------------

    def next_import_ids(self, n: int) -> list[int]:
        if self.read_only:  # nextval changes the sequence, which the statement check passes
            raise _read_only_refusal(self.path)
        rows = self._run("SELECT nextval('import_id_seq') FROM generate_series(1, ?)", [n])
        return sorted(int(r[0]) for r in rows)

    def log_imports(
        self, entries: list[tuple[ImportResult, dt.datetime, str]], imported_by: str | None = None
    ) -> None:
        if not entries:
            return
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        frame = pl.DataFrame(
            [
                {
                    "import_id": r.import_id,
                    "source_kind": r.source_kind,
                    "source_file": r.source_file,
                    "file_sha256": sha,
                    "started_at": started,
                    "status": r.status,
                    "rows_read": r.rows_read,
                    "inserted": r.inserted,
                    "updated": r.updated,
                    "unchanged": r.unchanged,
                    "quarantined": r.quarantined,
                    "no_location": r.no_location,
                    "outside_areas": r.outside_areas,
                    "message": r.message,
                    "published_at": r.published_at,
                    "published_how": r.published_how or None,
                    "vintage": r.vintage or None,
                    "stale": r.stale,
                    "later_sightings": r.later_sightings,
                    "finished_at": now,
                    "imported_by": imported_by,
                }
                for r, started, sha in entries
            ],
            schema_overrides={
                "started_at": pl.Datetime("us"),
                "message": pl.String,
                "published_at": pl.Datetime("us"),
                "published_how": pl.String,
                "vintage": pl.String,
                "finished_at": pl.Datetime("us"),
                "imported_by": pl.String,
            },
        )
        self._insert("imports", frame)

    def add_quarantine(self, import_id: int, rows: list[QuarantineRow]) -> None:
        if not rows:
            return
        frame = pl.DataFrame(
            {
                "import_id": [import_id] * len(rows),
                "source_file": [r.source_file for r in rows],
                "line": [r.line for r in rows],
                # a NUL (which PostgreSQL text cannot hold) becomes U+FFFD in `_copy`
                "raw_text": [r.raw_text for r in rows],
                "reason": [r.reason for r in rows],
            },
            schema={
                "import_id": pl.Int64,
                "source_file": pl.String,
                "line": pl.Int64,
                "raw_text": pl.String,
                "reason": pl.String,
            },
        )
        self._insert("quarantine", frame)

    def quarantine(
        self, import_id: int | None = None, source_file: str | None = None, limit: int = 1000
    ) -> pl.DataFrame:
        return self._frame(
            "SELECT q.import_id, q.source_file, q.line, q.reason, q.raw_text "
            "FROM quarantine q "
            "WHERE (?::BIGINT IS NULL OR q.import_id = ?) "
            "AND (?::VARCHAR IS NULL OR strpos(q.source_file, ?) > 0) "
            "ORDER BY q.import_id, q.source_file, q.line LIMIT ?",
            [import_id, import_id, source_file, source_file, limit],
        )

    # -- areas -----------------------------------------------------------------------------

    def replace_area_set(self, info: AreaSetInfo, areas: pl.DataFrame) -> None:
        col = _area_col(info.name)
        with self.transaction():
            self._run("DELETE FROM areas WHERE set_name = ?", [info.name])
            self._run("DELETE FROM area_sets WHERE name = ?", [info.name])
            self._run(
                "INSERT INTO area_sets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    info.name,
                    info.source_file,
                    info.code_field,
                    info.name_field,
                    info.source_crs,
                    info.feature_count,
                    info.repaired_count,
                    info.rejected_count,
                    info.imported_at,
                    False,
                ],
            )
            self._insert("areas", areas.with_columns(pl.lit(info.name).alias("set_name")))
            for table in RECORD_TABLES:
                self._run(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} {_TEXT}")
            self._touch_cells(set_name=info.name)

    def replace_lookup(self, frame: pl.DataFrame) -> int:
        with self.transaction():
            self._temp("_lookup_in", frame, like="area_lookups")
            self._run(
                "DELETE FROM area_lookups USING (SELECT DISTINCT from_set, to_set "
                "FROM _lookup_in) k "
                "WHERE area_lookups.from_set = k.from_set AND area_lookups.to_set = k.to_set"
            )
            self._untemp("_lookup_in")
            self._insert("area_lookups", frame)
        return frame.height

    def replace_populations(self, set_name: str, year: int, frame: pl.DataFrame) -> int:
        with self.transaction():
            self._run(
                "DELETE FROM area_populations WHERE set_name = ? AND year = ?", [set_name, year]
            )
            rows = frame.select(
                pl.lit(set_name).alias("set_name"),
                "area_code",
                pl.lit(year, dtype=pl.Int32).alias("year"),
                "population",
                "method",
                "source_file",
            )
            self._insert("area_populations", rows)
        return frame.height

    # -- records ---------------------------------------------------------------------------

    def matching_rows(self, table: str, hash_col: str, hashes: pl.Series) -> pl.DataFrame:
        """Existing rows whose join hash is among `hashes` (with their rowid as `_rid`)."""
        if (table, hash_col) not in _HASHED:
            raise StoreError(f"unknown table and hash column {table!r}, {hash_col!r}")
        self._temp("_hashes_in", pl.DataFrame({"h": hashes.unique()}))
        try:
            frame = self._frame(
                f"SELECT t.rowid AS _rid, t.* FROM {table} t "
                f"WHERE t.{hash_col} IN (SELECT h FROM _hashes_in)"
            )
        finally:
            self._untemp("_hashes_in")
        return pl.DataFrame() if frame.is_empty() else frame

    def insert_rows(self, table: str, frame: pl.DataFrame) -> None:
        tbl = _table(table, also=("outcomes",))
        with self.transaction():
            self._insert(tbl, frame)
            if tbl == "crimes" and frame.height:
                self._touch_cells(months=frame["month"])

    def update_crimes(self, frame: pl.DataFrame, sources: dict[int, str]) -> None:
        """Keep each crime's previous version in crime_history, then overwrite it in place
        (as `DuckDBStore.update_crimes`)."""
        with self.transaction():
            self._temp("_upd_in", frame, like="crimes")
            old_months = self._frame(
                "SELECT DISTINCT c.month FROM crimes c JOIN _upd_in u ON c.rowid = u._rid"
            )["month"]
            self._temp(
                "_src_in",
                pl.DataFrame(
                    {"import_id": list(sources), "source_file": list(sources.values())},
                    schema={"import_id": pl.Int64, "source_file": pl.String},
                ),
            )
            names = [c.removeprefix("c.") for c in _CRIME_HISTORY_COLS.split(", ")]
            self._run(
                f"INSERT INTO crime_history ({', '.join(names)}, source_file, replaced_at, "
                f"replaced_by_import) SELECT {_CRIME_HISTORY_COLS}, "
                "coalesce(i.source_file, s.source_file), "
                "now() AT TIME ZONE 'UTC', u.import_id "
                "FROM crimes c JOIN _upd_in u ON c.rowid = u._rid "
                "LEFT JOIN imports i ON i.import_id = c.import_id "
                "LEFT JOIN _src_in s ON s.import_id = c.import_id"
            )
            self._untemp("_src_in")
            columns = [c for c in frame.columns if c != "_rid"]
            assignments = ", ".join(f"{_safe_col(c)} = u.{_safe_col(c)}" for c in columns)
            self._run(f"UPDATE crimes SET {assignments} FROM _upd_in u WHERE crimes.rowid = u._rid")
            self._untemp("_upd_in")
            self._touch_cells(months=pl.concat([old_months, frame["month"]]))

    # Each crime's latest outcome: the outcome of its latest outcome month (the last line of
    # that month's file breaks a tie), NULL without outcomes: DuckDB's arg_max as DISTINCT ON.
    _LATEST_OUTCOME = """
        SELECT c.rowid AS _rid, o.outcome_type, o.month
        FROM crimes c LEFT JOIN (
            SELECT DISTINCT ON (o.crime_hash, o.crime_id) o.crime_hash, o.crime_id,
                   o.outcome_type, o.month
            FROM outcomes o {where}
            ORDER BY o.crime_hash, o.crime_id, o.month DESC, o.source_line DESC NULLS LAST
        ) o ON c.crime_hash = o.crime_hash AND c.crime_id = o.crime_id
        {crime_where}
    """

    def refresh_latest_outcomes(self, hashes: pl.Series | None = None) -> int:
        with self.transaction():
            if hashes is not None:
                self._temp("_touched_in", pl.DataFrame({"h": hashes.unique()}))
            try:
                return self._count(
                    f"""
                    UPDATE crimes SET latest_outcome = o.outcome_type,
                                      latest_outcome_month = o.month
                    FROM ({self._latest_sql(hashes is not None)}) o
                    WHERE crimes.rowid = o._rid
                      AND (crimes.latest_outcome IS DISTINCT FROM o.outcome_type
                           OR crimes.latest_outcome_month IS DISTINCT FROM o.month)
                    """
                )
            finally:
                if hashes is not None:
                    self._untemp("_touched_in")

    def update_crimes_provenance(self, frame: pl.DataFrame) -> None:
        with self.transaction():
            self._temp("_prov_in", frame, like="crimes")
            self._run(
                "UPDATE crimes SET vintage = u.vintage, import_id = u.import_id, "
                "source_line = u.source_line FROM _prov_in u WHERE crimes.rowid = u._rid"
            )
            self._untemp("_prov_in")

    def delete_history_rows(self, table: str, rids: pl.Series) -> None:
        tbl = _table(table, also=self._VERSIONED)
        self._run(
            f"DELETE FROM {tbl} WHERE rowid = ANY(?::BIGINT[])", [rids.cast(pl.Int64).to_list()]
        )

    def insert_history_rows(self, table: str, frame: pl.DataFrame) -> None:
        tbl = _table(table, also=self._VERSIONED[:2])
        with self.transaction():
            self._temp("_hist_in", frame, like=tbl)
            cols = [_safe_col(c) for c in frame.columns if c != "source_file"]
            self._run(
                f"INSERT INTO {tbl} ({', '.join(cols)}, source_file) "
                f"SELECT {', '.join('h.' + c for c in cols)}, "
                "coalesce(h.source_file, i.source_file) "
                "FROM _hist_in h LEFT JOIN imports i ON i.import_id = h.import_id"
            )
            self._untemp("_hist_in")

    def crime_versions(self, crime_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        cols = ", ".join(
            f"v.{c}"
            for c in (
                "crime_id",
                "source_kind",
                "month",
                "crime_type",
                "last_outcome_category",
                "location",
                "longitude",
                "latitude",
                "lsoa_code_file",
                "context",
                "import_id",
                "source_line",
                "vintage",
            )
        )
        versions = self._frame(
            f"""
            SELECT * FROM (
                SELECT 'current' AS version, {cols}, i.source_file,
                       i.published_at, i.published_how, NULL::BIGINT AS replaced_by_import
                FROM crimes v LEFT JOIN imports i USING (import_id) WHERE v.crime_id = ?
                UNION ALL
                SELECT CASE WHEN v.month > c.month THEN 'later month' ELSE 'earlier' END,
                       {cols}, coalesce(v.source_file, i.source_file),
                       i.published_at, i.published_how, v.replaced_by_import
                FROM crime_history v LEFT JOIN imports i USING (import_id)
                LEFT JOIN crimes c ON c.crime_id = v.crime_id
                WHERE v.crime_id = ?
            ) versions ORDER BY version = 'current' DESC, vintage DESC NULLS LAST, month
            """,
            [crime_id, crime_id],
        )
        ocols = "v.crime_id, v.month, v.outcome_type, v.import_id, v.source_line, v.vintage"
        outcomes = self._frame(
            f"""
            SELECT * FROM (
                SELECT 'held' AS version, {ocols}, i.source_file, i.published_at,
                       i.published_how
                FROM outcomes v LEFT JOIN imports i USING (import_id) WHERE v.crime_id = ?
                UNION ALL
                SELECT 'superseded', {ocols}, coalesce(v.source_file, i.source_file),
                       i.published_at, i.published_how
                FROM outcome_history v LEFT JOIN imports i USING (import_id)
                WHERE v.crime_id = ?
            ) outcomes ORDER BY month, version, vintage DESC NULLS LAST, source_line
            """,
            [crime_id, crime_id],
        )
        return versions, outcomes

    def invariant_failures(self) -> dict[str, int]:
        """Rows breaking each invariant `placeharm check` verifies (0 = holds)."""
        checks = {
            "imports whose account does not balance": (
                "SELECT count(*) FROM imports WHERE status = 'ok' AND rows_read <> "
                "inserted + updated + unchanged + quarantined"
            ),
            "quarantined rows without their import": (
                "SELECT count(*) FROM quarantine q WHERE NOT EXISTS "
                "(SELECT 1 FROM imports i WHERE i.import_id = q.import_id)"
            ),
        }
        for table in ("crimes", "outcomes", "stop_searches", "crime_history", "outcome_history"):
            checks[f"{table} rows without their import"] = (
                f"SELECT count(*) FROM {table} t WHERE t.import_id IS NOT NULL "
                "AND t.import_id NOT IN (SELECT import_id FROM imports)"
            )
        checks["coverage months without their import"] = (
            "SELECT count(*) FROM coverage c WHERE NOT EXISTS "
            "(SELECT 1 FROM imports i WHERE i.import_id = c.import_id)"
        )
        checks["crimes with a stale latest outcome"] = (
            f"SELECT count(*) FROM crimes c JOIN ({self._latest_sql(False)}) o "
            "ON c.rowid = o._rid WHERE c.latest_outcome IS DISTINCT FROM o.outcome_type "
            "OR c.latest_outcome_month IS DISTINCT FROM o.month"
        )
        version = (
            "coalesce(crime_id, record_key), source_kind, month, reported_by, falls_within, "
            "longitude, latitude, location, lsoa_code_file, lsoa_name_file, crime_type, "
            "last_outcome_category, context"
        )
        checks["crime versions kept twice in crime_history"] = (
            f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {version} "
            "FROM crime_history WHERE vintage IS NOT NULL) d) FROM crime_history "
            "WHERE vintage IS NOT NULL"
        )
        checks["crime_history versions equal to the crime's current version"] = (
            f"SELECT count(*) FROM (SELECT {version} FROM crime_history "
            f"WHERE vintage IS NOT NULL INTERSECT ALL SELECT {version} FROM crimes) d"
        )
        sets = [s.name for s in self.area_sets()]
        for table in ("crimes", "stop_searches"):
            checks[f"{table} with a wrong located flag"] = (
                f"SELECT count(*) FROM {table} WHERE located IS DISTINCT FROM "
                "(longitude IS NOT NULL AND latitude IS NOT NULL)"
            )
            if sets:
                any_code = " OR ".join(f"{_area_col(s)} IS NOT NULL" for s in sets)
                checks[f"{table} with a stale in_area flag"] = (
                    f"SELECT count(*) FROM {table} WHERE located "
                    f"AND in_area IS DISTINCT FROM ({any_code})"
                )
        failures = {name: int(self._one(sql)[0]) for name, sql in checks.items()}  # type: ignore[index]
        failures[CELLS_CHECK] = self._cells_differing()
        return failures

    def set_area_codes(self, table: str, set_name: str, frame: pl.DataFrame) -> None:
        tbl = _table(table)
        col = _area_col(set_name)
        with self.transaction():
            self._temp("_codes_in", frame)
            extra = (
                ", lsoa_reconciled = c.reconciled" if tbl == "crimes" and set_name == "lsoa" else ""
            )
            self._run(
                f"UPDATE {tbl} SET {col} = c.code{extra} FROM _codes_in c "
                f"WHERE {tbl}.rowid = c._rid"
            )
            self._untemp("_codes_in")
            if tbl == "crimes":
                self._touch_cells(set_name=set_name)
            self.refresh_in_area(tbl)

    def refresh_in_area(self, table: str) -> None:
        tbl = _table(table)
        sets = [s.name for s in self.area_sets()]
        if not sets:
            return
        any_code = " OR ".join(f"{_area_col(s)} IS NOT NULL" for s in sets)
        self._run(
            f"UPDATE {tbl} SET in_area = ({any_code}) "
            f"WHERE located AND in_area IS DISTINCT FROM ({any_code})"
        )

    # -- coverage and counts ---------------------------------------------------------------

    def record_coverage(self, frame: pl.DataFrame) -> None:
        """Upsert coverage (as `DuckDBStore.record_coverage`)."""
        latest = frame.sort("named", "import_id").unique(
            ["source_kind", "force", "month"], keep="last", maintain_order=True
        )
        cols = ", ".join(_safe_col(c) for c in latest.columns)
        with self.transaction():
            self._temp("_coverage_in", latest, like="coverage")
            self._run(
                f"INSERT INTO coverage ({cols}) SELECT {cols} FROM _coverage_in "
                "ON CONFLICT (source_kind, force, month) DO UPDATE SET rows = excluded.rows, "
                "import_id = excluded.import_id, source_file = excluded.source_file, "
                "named = excluded.named WHERE excluded.named OR NOT coverage.named"
            )
            self._run(
                "UPDATE coverage SET rows = (SELECT count(*) FROM crimes c "
                "WHERE c.source_kind = 'api' AND c.month = coverage.month) "
                "WHERE source_kind = 'api' AND month IN "
                "(SELECT month FROM _coverage_in WHERE source_kind = 'api')"
            )
            self._untemp("_coverage_in")

    def counts_by_area_month(
        self,
        set_name: str,
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None,
    ) -> pl.DataFrame:
        col = _area_col(set_name)
        return self._frame(
            f"SELECT {col} AS area_code, month, count(*)::BIGINT AS records FROM crimes "
            "WHERE month BETWEEN ? AND ? "
            "AND (?::VARCHAR[] IS NULL OR crime_type = ANY(?::VARCHAR[])) GROUP BY 1, 2",
            [first, last, crime_types, crime_types],
        )

    def crime_cube(
        self,
        set_name: str,
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None,
        offence_codes: list[str] | None,
        by_month: bool,
    ) -> pl.DataFrame:
        col = _area_col(set_name)
        month = "month, " if by_month else ""
        groups = "1, 2, 3, 4" if by_month else "1, 2, 3"
        return self._frame(
            f"SELECT {col} AS area_code, {month}crime_type, offence_code, "
            "count(*)::BIGINT AS records FROM crimes "
            "WHERE month BETWEEN ? AND ? "
            "AND (?::VARCHAR[] IS NULL OR crime_type = ANY(?::VARCHAR[])) "
            "AND (?::VARCHAR[] IS NULL OR offence_code = ANY(?::VARCHAR[])) "
            f"GROUP BY {groups}",
            [first, last, crime_types, crime_types, offence_codes, offence_codes],
        )

    def crime_cells(self, set_name: str) -> pl.DataFrame:
        check_area_set_name(set_name)
        return self._frame(
            "SELECT area_code, month, crime_type, offence_code, records FROM crime_cells "
            "WHERE set_name = ? ORDER BY area_code, month, crime_type, offence_code, records",
            [set_name],
        )

    def crime_locations(
        self,
        area: tuple[str, str],
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None = None,
        decimals: int = 4,
    ) -> pl.DataFrame:
        return self._frame(
            f"SELECT {_ROUND_LON} AS longitude, "
            f"{_ROUND_LAT} AS latitude, "
            "count(*)::INTEGER AS crimes FROM crimes "
            f"WHERE {_area_col(area[0])} = ? AND month BETWEEN ? AND ? "
            "AND (?::VARCHAR[] IS NULL OR crime_type = ANY(?::VARCHAR[])) "
            "AND longitude IS NOT NULL AND latitude IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY crimes DESC, longitude, latitude",
            [*_scales(decimals), area[1], first, last, crime_types, crime_types],
        )

    def crime_point_details(self, area: tuple[str, str], decimals: int = 4) -> pl.DataFrame:
        """As DuckDBStore.crime_point_details: a map point's details (issue 15)."""
        return self._frame(
            f"SELECT month, crime_type, {_ROUND_LON} "
            f"AS longitude, {_ROUND_LAT} AS latitude, "
            "location, latest_outcome, count(*)::INTEGER AS crimes FROM crimes "
            f"WHERE {_area_col(area[0])} = ? "
            "AND longitude IS NOT NULL AND latitude IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6",
            [*_scales(decimals), area[1]],
        )

    def outcome_counts(
        self, set_name: str, first: dt.date, last: dt.date, area_code: str | None = None
    ) -> pl.DataFrame:
        """As DuckDBStore.outcome_counts (issue 15: outcome rates)."""
        col = _area_col(set_name)
        return self._frame(
            f"SELECT {col} AS area_code, month, "
            "coalesce(latest_outcome, nullif(last_outcome_category, '')) AS outcome, "
            "count(*)::BIGINT AS crimes FROM crimes "
            "WHERE month BETWEEN ? AND ? AND coalesce(crime_id, '') <> '' "
            f"AND (?::VARCHAR IS NULL OR {col} = ?) GROUP BY 1, 2, 3",
            [first, last, area_code, area_code],
        )

    def outcomes_of_crime_ids(self, crime_ids: list[str]) -> pl.DataFrame:
        """As DuckDBStore.outcomes_of_crime_ids (one outcome per Crime ID)."""
        if not crime_ids:
            return pl.DataFrame(schema={"crime_id": pl.String, "outcome": pl.String})
        return self._frame(
            "SELECT crime_id, (array_agg(coalesce(latest_outcome, "
            "nullif(last_outcome_category, '')) ORDER BY month DESC, coalesce(latest_outcome, "
            "nullif(last_outcome_category, '')) COLLATE \"C\" DESC NULLS LAST))[1] AS outcome "
            "FROM crimes "
            "WHERE crime_id = ANY(?::VARCHAR[]) GROUP BY crime_id",
            [crime_ids],
        )

    def arrow(self, table: str) -> pa.Table:
        """A whole record table as Arrow (for notebooks and tests)."""
        if table not in {"crimes", "crime_history", "outcomes", "stop_searches", "quarantine"}:
            raise StoreError(f"unknown table {table!r}")
        return self._frame(f"SELECT * FROM {table}").to_arrow()

    def records_page(
        self,
        table: str,
        columns: list[str],
        first: dt.date | None,
        last: dt.date | None,
        date_col: str,
        area: tuple[str, str] | None,
        search: tuple[str, str] | None,
        sort: str,
        descending: bool,
        limit: int,
        offset: int,
        equals: list[tuple[str, str]] | None = None,
        exclude: tuple[str, list[str]] | None = None,
        include: tuple[str, list[str]] | None = None,
        scope: Scope = EVERYTHING,
        sort_counts: list[tuple[Any, int]] | None = None,
    ) -> tuple[pl.DataFrame, int]:
        """One page of a record table and the number of matching rows (as
        `DuckDBStore.records_page`, `sort_counts` included: see `_page_of_counts`)."""
        cols = ", ".join(_safe_col(c) for c in columns)
        clause, params = _records_where(
            table, first, last, date_col, area, search, equals, exclude, include, scope
        )
        clause = _pg_where(clause)
        if sort_counts is not None:
            return self._page_of_counts(
                table, cols, clause, params, sort, limit, offset, sort_counts, descending
            )
        order = f"{_safe_col(sort)} {'DESC' if descending else 'ASC'} NULLS LAST, rowid"
        total = self._one(f"SELECT count(*) FROM {table} WHERE {clause}", params)
        frame = self._frame(
            f"SELECT {cols} FROM {table} WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return frame, int(total[0]) if total else 0

    def _page_of_counts(
        self,
        table: str,
        cols: str,
        clause: str,
        params: list[object],
        sort: str,
        limit: int,
        offset: int,
        sort_counts: list[tuple[Any, int]],
        descending: bool,
    ) -> tuple[pl.DataFrame, int]:
        """records_page from the rows per sort value (issue 17; the same rows and order as
        `DuckDBStore._page_of_counts`): the total is the counts' sum, not a count(*) over the
        window (4.6 s for 12 months at 10M records), and the page is read one sort value at a
        time, each value's rows in rowid order, which the (month, rowid) index of PostgreSQL
        migration 15 serves (an ORDER BY over the whole window read and sorted all of its
        rows: 7.3 s). The value is compared with `=`, not BETWEEN, so the planner walks
        that index rather than the rowid index; rowids are taken first and the page's
        columns read for those rows alone, so skipped rows cost index entries only."""
        ordered = sorted(((v, n) for v, n in sort_counts if n > 0), reverse=descending)
        total = sum(n for _, n in ordered)
        frames: list[pl.DataFrame] = []
        wanted, skip = limit, offset  # rows still wanted; rows to skip in the next value
        for value, rows in ordered:
            if wanted == 0:
                break
            if skip >= rows:
                skip -= rows
                continue
            frame = self._frame(
                f"SELECT {cols} FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                f"WHERE {clause} AND {_safe_col(sort)} = ? ORDER BY rowid LIMIT ? OFFSET ?) "
                "ORDER BY rowid",
                [*params, value, wanted, skip],
            )
            frames.append(frame)
            wanted -= frame.height
            skip = 0
        if not frames:  # past the last page: no rows, the columns still named
            frames.append(self._frame(f"SELECT {cols} FROM {table} WHERE FALSE"))
        return pl.concat(frames, how="vertical_relaxed"), total

    # -- the harm cube, maintained (issue 14; as in DuckDBStore) ----------------------------

    def _maintain_cells(self) -> None:
        pending = getattr(self._local, "cells_pending", None)
        self._local.cells_pending = None
        if not pending or not (pending[0] or pending[1]):
            return
        # one recount at a time across processes; READ COMMITTED then sees the rows of the
        # transaction that held the lock before this one
        self._exec("SELECT pg_advisory_xact_lock(?)", [_CELLS_LOCK])
        months, whole = sorted(pending[0]), sorted(pending[1])
        sets = [s.name for s in self.area_sets()]
        for name in whole:
            self._run("DELETE FROM crime_cells WHERE set_name = ?", [name])
        whole = [s for s in whole if s in sets]
        if whole:
            sql, params = self._cells_sql(whole)
            self._run(f"INSERT INTO crime_cells {sql}", params)
        rest = [s for s in sets if s not in whole]
        if months and rest:
            self._run(
                "DELETE FROM crime_cells WHERE set_name = ANY(?::VARCHAR[]) "
                "AND month BETWEEN ? AND ? AND month = ANY(?::DATE[])",
                [rest, months[0], months[-1], months],
            )
            sql, params = self._cells_sql(rest, months)
            self._run(f"INSERT INTO crime_cells {sql}", params)

    def _cells_sql(
        self, sets: list[str], months: list[dt.date] | None = None
    ) -> tuple[str, list[object]]:
        where, bounds = "", []
        if months is not None:
            where = "WHERE month BETWEEN ? AND ? AND month = ANY(?::DATE[])"
            bounds = [months[0], months[-1], months]
        if not sets:
            return (
                "SELECT NULL::VARCHAR AS set_name, NULL::VARCHAR AS area_code, "
                "NULL::DATE AS month, NULL::VARCHAR AS crime_type, NULL::VARCHAR AS "
                "offence_code, NULL::BIGINT AS records WHERE false",
                [],
            )
        cols = [_area_col(name) for name in sets]
        which = " ".join(f"WHEN grouping({c}) = 0 THEN ?::VARCHAR" for c in cols)
        code = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in cols)
        grouping = ", ".join(f"({c}, month, crime_type, offence_code)" for c in cols)
        sql = (
            f"SELECT (CASE {which} END)::VARCHAR AS set_name, CASE {code} END AS area_code, "
            "month, crime_type, offence_code, count(*)::BIGINT AS records "
            f"FROM crimes {where} GROUP BY GROUPING SETS ({grouping})"
        )
        return sql, [*sets, *bounds]

    def _cells_differing(self) -> int:
        """Cells held or recounted that a full recount does not match (0: the cube holds
        exactly the recount). PostgreSQL's FULL JOIN needs an equality join, so the nullable
        key columns are compared through a value no code takes (chr(1))."""
        sql, params = self._cells_sql([s.name for s in self.area_sets()])
        on = " AND ".join(
            f"coalesce(h.{c}, chr(1)) = coalesce(r.{c}, chr(1))"
            if c in ("area_code", "offence_code")
            else f"h.{c} = r.{c}"
            for c in ("set_name", "area_code", "month", "crime_type", "offence_code")
        )
        key = "set_name, area_code, month, crime_type, offence_code"
        row = self._one(
            f"SELECT (SELECT count(*) FROM crime_cells h FULL JOIN ({sql}) r ON {on} "
            "WHERE h.records IS DISTINCT FROM r.records) + (SELECT count(*) - "
            f"count(DISTINCT ({key})) FROM crime_cells)",
            params,
        )
        return int(row[0]) if row else 0

    def rebuild_crime_cells(self) -> int:
        with self.transaction():
            self._exec("SELECT pg_advisory_xact_lock(?)", [_CELLS_LOCK])
            self._run("DELETE FROM crime_cells")
            sql, params = self._cells_sql([s.name for s in self.area_sets()])
            self._run(f"INSERT INTO crime_cells {sql}", params)
            self._local.cells_pending = None
            row = self._one("SELECT count(*) FROM crime_cells")
        return int(row[0]) if row else 0

    # -- SOC: what the rest of the app asks of every store ----------------------------------

    def soc_summary(self) -> tuple[dt.date | None, dt.date | None, bool]:
        row = self._one(
            """SELECT min(d), max(d), (SELECT coalesce(bool_or(synthetic), FALSE)
                                      FROM soc_nominals)
               FROM (SELECT recorded_date AS d FROM soc_force_crimes
                     UNION ALL SELECT reported_date FROM soc_intelligence
                     UNION ALL SELECT occurred_date FROM soc_incidents) dated"""
        )
        if row is None:
            return None, None, False
        return row[0], row[1], bool(row[2])

    # -- users and sessions (the same statements as DuckDB's) -------------------------------

    def upsert_user(
        self, username: str, display_name: str, role: str, password_hash: str, demo: bool
    ) -> None:
        with self.transaction():
            self._run("DELETE FROM users WHERE username = ?", [username])
            self._run(
                "INSERT INTO users (username, display_name, role, password_hash, disabled, "
                "demo, created_at, password_changed_at, auth_source) "
                "VALUES (?, ?, ?, ?, FALSE, ?, now() AT TIME ZONE 'UTC', "
                "now() AT TIME ZONE 'UTC', 'local')",
                [username, display_name, role, password_hash, demo],
            )

    def user(self, username: str) -> dict[str, Any] | None:
        keys = (
            "username",
            "display_name",
            "role",
            "password_hash",
            "disabled",
            "demo",
            "disabled_at",
            "password_changed_at",
            "auth_source",
        )
        row = self._one(f"SELECT {', '.join(keys)} FROM users WHERE username = ?", [username])
        return None if row is None else dict(zip(keys, row, strict=True))

    def purge_sessions(self, now: dt.datetime) -> int:
        return self._count("DELETE FROM sessions WHERE expires_at <= ?", [now])

    def add_sso_user(
        self,
        username: str,
        display_name: str,
        role: str,
        password_hash: str,
        issuer: str,
        subject: str,
    ) -> None:
        self._run(
            "INSERT INTO users (username, display_name, role, password_hash, disabled, demo, "
            "created_at, auth_source, external_issuer, external_subject) "
            "VALUES (?, ?, ?, ?, FALSE, FALSE, now() AT TIME ZONE 'UTC', 'oidc', ?, ?)",
            [username, display_name, role, password_hash, issuer, subject],
        )

    def end_user_sessions(self, username: str) -> int:
        return self._count("DELETE FROM sessions WHERE username = ?", [username])

    def end_demo_sessions(self) -> int:
        return self._count(
            "DELETE FROM sessions WHERE username IN (SELECT username FROM users WHERE demo)"
        )

    def end_sessions_by_source(self, auth_source: str) -> int:
        return self._count(
            "DELETE FROM sessions WHERE username IN "
            "(SELECT username FROM users WHERE auth_source = ?)",
            [auth_source],
        )

    def set_user_disabled(self, username: str, disabled: bool, at: dt.datetime) -> bool:
        row = self._one(
            "UPDATE users SET disabled = ?, "
            "disabled_at = CASE WHEN ?::BOOLEAN THEN coalesce(disabled_at, ?::TIMESTAMP) END "
            "WHERE username = ? RETURNING username",
            [disabled, disabled, at, username],
        )
        return row is not None

    # -- registered harm indices (issue 12) ---------------------------------------------------

    def add_harm_index(self, meta: dict[str, object], weights: pl.DataFrame) -> None:
        values = [meta[c] for c in self._HARM_INDEX_COLUMNS if c != "added_at"]
        with self.transaction():
            if self._one("SELECT 1 FROM harm_indices WHERE name = ?", [meta["name"]]):
                raise StoreError(f"a harm index called {meta['name']!r} is already registered")
            self._run(
                f"INSERT INTO harm_indices ({', '.join(self._HARM_INDEX_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(self._HARM_INDEX_COLUMNS) - 1))}, "
                "now() AT TIME ZONE 'UTC')",
                values,
            )
            self._insert(
                "harm_index_weights",
                weights.select(
                    pl.lit(str(meta["name"])).alias("index_name"),
                    "weight_kind",
                    "weight_key",
                    "weight",
                ),
            )

    # -- the audit log -------------------------------------------------------------------------

    def audit_head(self, at_least: int = 0) -> tuple[int, str] | None:
        """The newest entry's sequence number and hash (None for an empty log). In a
        transaction it first takes the audit log's advisory lock, held to the commit: the
        app processes sharing the server append in turn, each chaining on the entry the one
        before committed (the chain's lock in placeharm.audit serialises one process)."""
        if self._in_tx:
            self._exec("SELECT pg_advisory_xact_lock(?)", [_AUDIT_LOCK])
        row = self._one("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        return None if row is None else (int(row[0]), str(row[1]))

    def audit_search(
        self,
        username: str | None,
        record: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        action: str | None,
        limit: int,
        offset: int = 0,
    ) -> tuple[pl.DataFrame, int]:
        where = (
            "(?::VARCHAR IS NULL OR username = ?) "
            "AND (?::VARCHAR IS NULL OR strpos(record_ids, ?) > 0) "
            "AND (?::TIMESTAMP IS NULL OR logged_at >= ?::TIMESTAMP) "
            "AND (?::TIMESTAMP IS NULL OR logged_at < ?::TIMESTAMP) "
            "AND (?::VARCHAR IS NULL OR action = ?)"
        )
        params: list[object] = [
            username,
            username,
            record,
            record,
            since,
            since,
            until,
            until,
            action,
            action,
        ]
        frame = self._frame(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log WHERE {where} "
            "ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        total = self._one(f"SELECT count(*) FROM audit_log WHERE {where}", params)
        return frame, int(total[0]) if total else 0

    def audit_usage(
        self, since: dt.datetime | None, until: dt.datetime | None
    ) -> dict[str, pl.DataFrame]:
        span = (
            "outcome = 'ok' AND action IN ('consultation', 'disclosure') "
            "AND (?::TIMESTAMP IS NULL OR logged_at >= ?::TIMESTAMP) "
            "AND (?::TIMESTAMP IS NULL OR logged_at < ?::TIMESTAMP)"
        )
        params: list[object] = [since, since, until, until]
        view = "action = 'consultation' AND format = 'html'"
        ward = "(record_ids::JSON -> 'ward' ->> 0)"
        week = "to_char(logged_at, 'IYYY-\"W\"IW')"
        totals = self._frame(
            "SELECT count(DISTINCT username) AS users, "
            f"count(*) FILTER (WHERE {view}) AS page_views, "
            "count(*) FILTER (WHERE action = 'disclosure') AS downloads, "
            f"count(DISTINCT {ward}) FILTER (WHERE {view} AND page = 'ward') AS wards_viewed "
            f"FROM audit_log WHERE {span}",
            params,
        )
        weekly = self._frame(
            f"SELECT {week} AS week, count(DISTINCT username) AS users, "
            f"count(*) FILTER (WHERE {view}) AS page_views, "
            "count(*) FILTER (WHERE action = 'disclosure') AS downloads "
            f"FROM audit_log WHERE {span} GROUP BY 1 ORDER BY week",
            params,
        )
        pages = self._frame(
            f"SELECT {week} AS week, page, count(*) AS views, count(DISTINCT username) AS users "
            f"FROM audit_log WHERE {span} AND {view} GROUP BY 1, 2 "
            "ORDER BY week, views DESC, page",
            params,
        )
        wards = self._frame(
            f"SELECT {week} AS week, {ward} AS ward, count(*) AS views, "
            f"count(DISTINCT username) AS users FROM audit_log WHERE {span} AND {view} "
            "AND page = 'ward' GROUP BY 1, 2 ORDER BY week, views DESC, ward",
            params,
        )
        return {"totals": totals, "weekly": weekly, "pages": pages, "wards": wards}

    def set_justification(
        self, token_hash: str, purpose: str, reason_code: str, reason_text: str, now: dt.datetime
    ) -> None:
        with self.transaction():
            self._run(
                "DELETE FROM audit_justifications WHERE token_hash NOT IN "
                "(SELECT token_hash FROM sessions) OR (token_hash = ? AND purpose = ?)",
                [token_hash, purpose],
            )
            self._run(
                "INSERT INTO audit_justifications VALUES (?, ?, ?, ?, ?)",
                [token_hash, purpose, reason_code, reason_text, now],
            )

    # -- the SOC overlay's records (the same rules as DuckDBStore's) ------------------------

    def soc_frame(
        self,
        table: str,
        set_name: str | None = None,
        between: tuple[str, dt.date, dt.date] | None = None,
        columns: list[str] | None = None,
        area_code: str | None = None,
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """Rows of a SOC table (as `DuckDBStore.soc_frame`), of those `scope` lets the
        reader see."""
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        cols = ", ".join(_safe_col(c) for c in columns) if columns else "*"
        area = ""
        where = ["TRUE"]
        params: list[object] = []
        if set_name is not None:
            if table not in SOC_LOCATED_TABLES:
                raise StoreError(f"{table} has no locations")
            area = f", {_area_col(set_name)} AS area_code"
            if area_code is not None:
                where.append(f"{_area_col(set_name)} = ?")
                params.append(area_code)
        elif area_code is not None:
            raise StoreError("an area code needs its area set")
        if between is not None:
            column, first, last = between
            where.append(f"{_safe_col(column)} BETWEEN ? AND ?")
            params += [first, last]
        _scoped(table, scope, where, params)
        return self._frame(
            f"SELECT {cols}{area} FROM {table} WHERE {_pg_where(' AND '.join(where))}",
            params or None,
        )

    def soc_keyed_rows(self, table: str, key: list[str], keys: pl.DataFrame) -> pl.DataFrame:
        """Stored rows of a SOC table whose key is among `keys` (with rowid as `_rid`)."""
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        cols = [_safe_col(c) for c in key]
        self._temp("_keys_in", keys.select(key), like=table)
        try:
            on = " AND ".join(f"t.{c} = k.{c}" for c in cols)
            return self._frame(
                f"SELECT t.rowid AS _rid, t.* FROM {table} t "
                f"WHERE EXISTS (SELECT 1 FROM _keys_in k WHERE {on})"
            )
        finally:
            self._untemp("_keys_in")

    def soc_insert(self, table: str, frame: pl.DataFrame) -> None:
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        self._insert(table, frame)

    def soc_update(self, table: str, frame: pl.DataFrame, history: pl.DataFrame) -> None:
        """Overwrite rows (frame: `_rid` and new values) and keep their previous versions
        (history: entity, entity_key, previous JSON text, source_file, replaced_by_import)."""
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        with self.transaction():
            self._temp("_hist_in", history)
            self._temp("_upd_in", frame, like=table)
            try:
                self._run(
                    "INSERT INTO soc_history (entity, entity_key, previous, source_file, "
                    "replaced_at, replaced_by_import) SELECT entity, entity_key, "
                    "previous::JSON, source_file, now() AT TIME ZONE 'UTC', "
                    "replaced_by_import FROM _hist_in"
                )
                columns = [c for c in frame.columns if c != "_rid"]
                sets = ", ".join(f"{_safe_col(c)} = u.{_safe_col(c)}" for c in columns)
                self._run(f"UPDATE {table} SET {sets} FROM _upd_in u WHERE {table}.rowid = u._rid")
            finally:
                self._untemp("_hist_in")
                self._untemp("_upd_in")

    def soc_history(self, entity: str | None = None) -> pl.DataFrame:
        return self._frame(
            "SELECT entity, entity_key, previous::VARCHAR AS previous, source_file, "
            "replaced_at, replaced_by_import FROM soc_history "
            "WHERE ?::VARCHAR IS NULL OR entity = ? ORDER BY replaced_at",
            [entity, entity],
        )

    def month_counts(
        self,
        table: str,
        date_col: str,
        set_name: str,
        first: dt.date,
        last: dt.date,
        code: str | None = None,
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """Records per (area_code, month, kind) of a located table between two dates (as
        `DuckDBStore.month_counts`)."""
        tbl = _table(table)
        col = _area_col(set_name)
        date = _safe_col(date_col)
        kind = "crime_type" if tbl in ("crimes", "soc_force_crimes") else "NULL::VARCHAR"
        where = f"{date} BETWEEN ? AND ?"
        params: list[object] = [first, last]
        if code is not None:
            where += f" AND {col} = ?"
            params.append(code)
        seen: list[str] = []
        _scoped(tbl, scope, seen, params)
        where = _pg_where(" AND ".join([where, *seen]))
        return self._frame(
            f"SELECT {col} AS area_code, date_trunc('month', {date})::DATE AS month, "
            f"{kind} AS kind, count(*)::BIGINT AS records FROM {tbl} "
            f"WHERE {where} GROUP BY 1, 2, 3",
            params,
        )

    def soc_cells(self, set_name: str) -> dict[str, pl.DataFrame]:
        """Counts of the dated SOC records per area x month x every column a measure may
        filter on or a scope may hide, and the nominals' homes (as `DuckDBStore.soc_cells`:
        its docstring says what each frame holds)."""
        area = f"{_area_col(set_name)} AS area_code"

        def month(col: str) -> str:
            return f"date_trunc('month', t.{col})::DATE AS month"

        dims = {
            "intelligence": ("soc_intelligence", "reported_date", "t.topics, t.handling_code"),
            "partner_events": (
                "soc_partner_events",
                "event_date",
                "t.partner, t.event_type, t.handling_code",
            ),
            "incidents": ("soc_incidents", "occurred_date", "t.incident_type"),
            "disruptions": ("soc_disruptions", "disruption_date", ""),
        }
        # `links`: the distinct [role, group_type] pairs, sorted (DuckDB's list_sort of a
        # list of lists), as a two-dimensional array
        crimes = self._frame(
            f"""WITH l AS (
                    SELECT nc.crime_ref,
                           array_agg(DISTINCT ARRAY[nc.role, g.group_type]::VARCHAR[]
                                     ORDER BY ARRAY[nc.role, g.group_type]::VARCHAR[]) AS links
                    FROM soc_nominal_crimes nc
                    JOIN soc_memberships m ON m.nominal_id = nc.nominal_id
                    JOIN soc_groups g ON g.group_id = m.group_id
                    GROUP BY nc.crime_ref),
                ml AS (
                    SELECT DISTINCT nc.crime_ref FROM soc_nominal_crimes nc
                    WHERE EXISTS (SELECT 1 FROM soc_memberships m
                                  WHERE m.nominal_id = nc.nominal_id))
                SELECT {area}, {month("recorded_date")}, t.offence_code, t.crime_type,
                       coalesce(t.firearms_discharged, FALSE) AS firearms_discharged,
                       coalesce(t.cannabis_production, FALSE) AS cannabis_production,
                       coalesce(l.links, '{{}}'::VARCHAR[]) AS links,
                       ml.crime_ref IS NOT NULL AS member_linked,
                       count(*)::BIGINT AS records
                FROM soc_force_crimes t
                LEFT JOIN l ON l.crime_ref = t.crime_ref
                LEFT JOIN ml ON ml.crime_ref = t.crime_ref
                GROUP BY 1, 2, 3, 4, 5, 6, 7, 8"""
        )
        out: dict[str, pl.DataFrame] = {
            "force_crimes": crimes.with_columns(pl.col("links").cast(pl.List(pl.List(pl.String))))
        }
        for source, (table, date_col, columns) in dims.items():
            more = f", {columns}" if columns else ""
            width = 2 + (len(columns.split(",")) if columns else 0)  # area, month, columns
            groups = ", ".join(str(i) for i in range(1, width + 1))
            out[source] = self._frame(
                f"SELECT {area}, {month(date_col)}{more}, count(*)::BIGINT AS records "
                f"FROM {table} t GROUP BY {groups}"
            )
        flags = ", ".join(f"n.{f}" for f in DuckDBStore._NOMINAL_FLAGS)
        out["homes"] = self._frame(
            f"SELECT a.nominal_id, {_area_col(set_name)} AS area_code, a.from_date, a.to_date, "
            f"a.address_id, {flags} FROM soc_addresses a "
            "JOIN soc_nominals n ON n.nominal_id = a.nominal_id WHERE a.link_type = 'home'"
        )
        out["members"] = self._frame("SELECT DISTINCT nominal_id FROM soc_memberships")
        out["group_homes"] = self._frame(
            f"SELECT DISTINCT {_area_col(set_name)} AS area_code, m.group_id, m.nominal_id "
            "FROM soc_memberships m JOIN soc_addresses a ON a.nominal_id = m.nominal_id "
            "WHERE a.link_type = 'home'"
        )
        out["groups"] = self._frame(
            "SELECT group_id, name, group_type, ocg_band, status FROM soc_groups"
        )
        return out

    # -- radius search, exports, MoPI reviews -------------------------------------------------

    def addresses_matching(
        self, address_id: str | None, text: str | None, limit: int
    ) -> tuple[pl.DataFrame, int]:
        """SOC addresses with this id or text (as `DuckDBStore.addresses_matching`)."""
        params: list[object]
        if address_id is not None:
            where, params = "address_id = ?", [address_id, address_id]
            exact = "address_id = ?"
        else:
            pattern = (
                "%"
                + (text or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            where, params = f"address {_FOLD_CASE} ILIKE ? ESCAPE '\\'", [text, pattern]
            exact = f"lower(address {_FOLD_CASE}) = lower(?::VARCHAR)"
        # min(): PostgreSQL 15 has no any_value (the rows of one address_id agree)
        grouped = (
            f"SELECT address_id, min(address) AS address, "
            f"bool_or({exact}) AS exact, min(latitude) AS latitude, "
            "min(longitude) AS longitude, bool_or(located) AS located, "
            "count(DISTINCT nominal_id)::INTEGER AS nominals "
            f"FROM soc_addresses WHERE {where} GROUP BY address_id"
        )
        total = self._one(f"SELECT count(*) FROM ({grouped}) g", params)
        frame = self._frame(
            f"SELECT * FROM ({grouped}) g ORDER BY exact DESC, address, address_id LIMIT ?",
            [*params, limit],
        )
        return frame, int(total[0]) if total else 0

    def records_stream(
        self,
        table: str,
        columns: list[str],
        first: dt.date | None,
        last: dt.date | None,
        date_col: str,
        area: tuple[str, str] | None,
        search: tuple[str, str] | None,
        sort: str,
        descending: bool,
        include: tuple[str, list[str]] | None = None,
        scope: Scope = EVERYTHING,
        batch_rows: int = 10_000,
    ) -> tuple[int, Iterator[pl.DataFrame]]:
        """Every row `records_page` would page through, in its order, in frames of at most
        `batch_rows` rows, and how many there are: read on a connection of its own in one
        REPEATABLE READ transaction through a server-side cursor, so the count and the rows
        are one snapshot and never all in memory. Close the iterator (or read it to the
        end) to end the transaction."""
        cols = ", ".join(_safe_col(c) for c in columns)
        clause, params = _records_where(
            table, first, last, date_col, area, search, None, None, include, scope
        )
        clause = _pg_where(clause)
        order = f"{_safe_col(sort)} {'DESC' if descending else 'ASC'} NULLS LAST, rowid"
        if self._closed:
            raise store_closed(self.path)
        try:
            con = psycopg.connect(self._url)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store {self.path}") from exc
        with self._conns_lock:  # closed while connecting: refused (an export begun before
            closed = self._closed  # close() reads to its end, as on DuckDB)
        if closed:
            con.close()
            raise store_closed(self.path)
        try:
            con.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            con.read_only = True
            counted = con.execute(
                _pg_sql(f"SELECT count(*) FROM {table} WHERE {clause}"), params
            ).fetchone()
            total = int(counted[0]) if counted else 0
            cur = con.cursor(name="placeharm_export")
            cur.execute(
                _pg_sql(f"SELECT {cols} FROM {table} WHERE {clause} ORDER BY {order}"), params
            )
        except BaseException:
            con.close()
            raise

        def batches() -> Iterator[pl.DataFrame]:
            try:
                while True:
                    rows = cur.fetchmany(batch_rows)
                    if not rows:
                        break
                    assert cur.description is not None
                    yield _to_frame(cur.description, rows)
            finally:
                with suppress(psycopg.Error):
                    con.rollback()
                con.close()

        return total, batches()

    def mopi_overdue(
        self, today: dt.date, kinds: tuple[str, ...], scope: Scope = EVERYTHING
    ) -> pl.DataFrame:
        """Records whose MoPI review date is before `today` (as `DuckDBStore.mopi_overdue`)."""
        parts: list[str] = []
        params: list[object] = []
        for kind in kinds:
            if kind not in _MOPI:
                raise StoreError(f"no MoPI review date on {kind!r}")
            table, key = _MOPI[kind]
            where = ["mopi_review_date < ?"]
            part_params: list[object] = [kind, today, today]
            _scoped(table, scope, where, part_params)
            parts.append(
                f"SELECT ?::VARCHAR AS kind, {key} AS record_id, mopi_review_date AS review_date, "
                "(?::DATE - mopi_review_date)::BIGINT AS days_overdue "
                f"FROM {table} WHERE {_pg_where(' AND '.join(where))}"
            )
            params += part_params
        if not parts:
            return pl.DataFrame(
                schema={
                    "kind": pl.String,
                    "record_id": pl.String,
                    "review_date": pl.Date,
                    "days_overdue": pl.Int64,
                }
            )
        return self._frame(
            f"{' UNION ALL '.join(parts)} ORDER BY days_overdue DESC, kind, record_id", params
        )

    # -- SOC measures in one statement (as DuckDBStore.soc_scores) ----------------------------

    def soc_scores(
        self,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        dated: dict[str, list[tuple[str, dict[str, Any], float | None]]],
        residents: list[tuple[str, list[str], float]],
        weights: tuple[pl.DataFrame, pl.DataFrame],
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """Per (area_code, period): every measure's count and harm, in one statement (see
        `DuckDBStore.soc_scores` for the arguments)."""
        parts: list[tuple[str, list[object]]] = []
        for source, measures in dated.items():
            if measures:
                needs = source == "force_crimes" and any(w is None for _, _, w in measures)
                parts.append(
                    self._soc_sums_query(source, set_name, periods, measures, needs, scope)
                )
        if residents:
            parts.append(self._resident_query(set_name, periods, residents, scope))
        if not parts:
            return pl.DataFrame(schema={"area_code": pl.String, "period": pl.String})
        sql = " FULL JOIN ".join(
            f"(SELECT * FROM ({q}) s{i} WHERE period IS NOT NULL) q{i}"
            + (" USING (area_code, period)" if i else "")
            for i, (q, _) in enumerate(parts)
        )
        params = [p for _, ps in parts for p in ps]
        with self.transaction():
            self._temp("_code_w", weights[0])
            self._temp("_type_w", weights[1])
            try:
                return self._frame(f"SELECT * FROM {sql}", params)
            finally:
                self._untemp("_code_w")
                self._untemp("_type_w")

    def _soc_condition(
        self, source: str, mid: str, filters: dict[str, Any]
    ) -> tuple[str, list[object]]:
        """SQL condition (with parameters) for one measure's filters; see soc/measures.py."""
        parts: list[str] = []
        params: list[object] = []

        def listed(column: str, values: list[Any]) -> None:
            parts.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(str(v) for v in values)

        if source == "force_crimes":
            if filters.get("linked_group_type"):
                parts.append(f"coalesce(l.{_safe_col('link_' + mid)}, FALSE)")
            if filters.get("offence_codes"):
                listed("t.offence_code", list(filters["offence_codes"]))
            if filters.get("crime_types"):
                listed("t.crime_type", list(filters["crime_types"]))
            if filters.get("flag"):
                flag = str(filters["flag"])
                if flag not in _SOC_FLAGS:
                    raise StoreError(f"unknown flag {flag!r}")
                parts.append(f"t.{flag}")
        elif source == "intelligence" and filters.get("topics_any"):
            topics = [str(v) for v in filters["topics_any"]]
            parts.append(
                "("
                + " OR ".join(
                    "strpos(';' || coalesce(t.topics, '') || ';', ?::VARCHAR) > 0" for _ in topics
                )
                + ")"
            )
            params.extend(f";{topic};" for topic in topics)
        elif source == "partner_events":
            for key in ("event_type", "partner"):
                if filters.get(key):
                    parts.append(f"t.{key} = ?")
                    params.append(str(filters[key]))
        elif source == "incidents" and filters.get("incident_types"):
            listed("t.incident_type", list(filters["incident_types"]))
        return " AND ".join(parts) or "TRUE", params

    def _soc_sums_query(
        self,
        source: str,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        measures: list[tuple[str, dict[str, Any], float | None]],
        weights: bool,
        scope: Scope = EVERYTHING,
    ) -> tuple[str, list[object]]:
        table, date_col = _SOC_DATED[source]
        select: list[str] = [f"{_area_col(set_name)} AS area_code"]
        params: list[object] = []
        case = ["CASE"]
        for name, (first, last) in periods.items():
            case.append(f"WHEN t.{date_col} BETWEEN ? AND ? THEN ?::VARCHAR")
            params += [first, last, name]
        select.append(" ".join([*case, "END AS period"]))
        for mid, filters, fixed in measures:
            col = _safe_col(mid)
            harm = _safe_col(f"{mid}_harm")
            condition, cond_params = self._soc_condition(source, mid, filters)
            select.append(f"count(*) FILTER (WHERE {condition})::BIGINT AS {col}")
            params += cond_params
            if fixed is None:
                select.append(
                    f"coalesce(sum(coalesce(cw.weight, tw.weight)) FILTER (WHERE {condition}), 0)"
                    f"::DOUBLE PRECISION AS {harm}"
                )
                params += cond_params
            else:
                select.append(
                    f"(count(*) FILTER (WHERE {condition})) * ?::DOUBLE PRECISION AS {harm}"
                )
                params += [*cond_params, fixed]
        join = ""
        linked = [(mid, f) for mid, f, _ in measures if f.get("linked_group_type")]
        cte, cte_params = "", []
        if linked:
            flags = []
            for mid, f in linked:
                roles = list(f.get("link_roles") or ["suspect", "offender"])
                wanted = str(f["linked_group_type"])
                test = f"nc.role IN ({', '.join('?' for _ in roles)})"
                cte_params += roles
                if wanted != "any":
                    test += " AND g.group_type = ?"
                    cte_params.append(wanted)
                flags.append(f"bool_or({test}) AS {_safe_col('link_' + mid)}")
            seen: list[str] = []
            for read, alias in (
                ("soc_nominal_crimes", "nc"),
                ("soc_memberships", "m"),
                ("soc_groups", "g"),
            ):
                _scoped(read, scope, seen, cte_params, alias)
            cte = (
                f"WITH l AS (SELECT nc.crime_ref, {', '.join(flags)} FROM soc_nominal_crimes nc "
                "JOIN soc_memberships m ON m.nominal_id = nc.nominal_id "
                "JOIN soc_groups g ON g.group_id = m.group_id "
                f"WHERE {_pg_where(' AND '.join(seen)) or 'TRUE'} GROUP BY nc.crime_ref) "
            )
            join += " LEFT JOIN l ON l.crime_ref = t.crime_ref"
        if weights:
            join += (
                " LEFT JOIN _code_w cw ON cw.offence_code = t.offence_code"
                " LEFT JOIN _type_w tw ON tw.crime_type = t.crime_type"
            )
        spans = list(periods.values())
        first = min(p[0] for p in spans)
        last = max(p[1] for p in spans)
        where = [f"t.{date_col} BETWEEN ? AND ?"]
        where_params: list[object] = [first, last]
        _scoped(table, scope, where, where_params, "t")
        sql = (
            f"{cte}SELECT {', '.join(select)} FROM {table} t{join} "
            f"WHERE {_pg_where(' AND '.join(where))} GROUP BY 1, 2"
        )
        return sql, [*cte_params, *params, *where_params]

    def _resident_query(
        self,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        measures: list[tuple[str, list[str], float]],
        scope: Scope = EVERYTHING,
    ) -> tuple[str, list[object]]:
        unions: list[str] = []
        params: list[object] = []
        homes: list[str] = ["a.link_type = 'home'"]
        home_params: list[object] = []
        _scoped("soc_addresses", scope, homes, home_params, "a")
        for name, (first, last) in periods.items():
            unions.append(
                f"SELECT * FROM (SELECT ?::VARCHAR AS period, a.nominal_id, "
                f"{_area_col(set_name)} AS area_code, row_number() OVER (PARTITION BY "
                "a.nominal_id ORDER BY a.from_date DESC NULLS LAST) AS k "
                f"FROM soc_addresses a WHERE {_pg_where(' AND '.join(homes))} "
                "AND (a.from_date IS NULL OR a.from_date <= ?) "
                "AND (a.to_date IS NULL OR a.to_date >= ?)) latest WHERE k = 1"
            )
            params += [name, *home_params, last, first]
        select = ["h.area_code", "h.period"]
        for mid, flags, _weight in measures:
            bad = [f for f in flags if f not in DuckDBStore._NOMINAL_FLAGS]
            if bad:
                raise StoreError(f"unknown nominal flag {bad[0]!r}")
            shown = [f"n.{f}" for f in flags if not scope.hides("soc_nominals", f)]
            test = " OR ".join(shown) or ("FALSE" if flags else "TRUE")
            select.append(f"count(*) FILTER (WHERE {test})::BIGINT AS {_safe_col(mid)}")
            select.append(
                f"(count(*) FILTER (WHERE {test})) * ?::DOUBLE PRECISION "
                f"AS {_safe_col(mid + '_harm')}"
            )
        weights = [w for _, _, w in measures]
        people: list[str] = ["TRUE"]
        people_params: list[object] = []
        _scoped("soc_nominals", scope, people, people_params, "n")
        sql = (
            f"SELECT {', '.join(select)} FROM ({' UNION ALL '.join(unions)}) h "
            "JOIN soc_nominals n ON n.nominal_id = h.nominal_id "
            f"WHERE {_pg_where(' AND '.join(people))} GROUP BY 1, 2"
        )
        return sql, [*weights, *params, *people_params]

    # -- not supported on PostgreSQL yet (NOT_YET): a message, never a traceback ---------------

    def backup(self, *args: object) -> dict[str, Any]:
        raise StoreError(
            "a PostgreSQL store is backed up with PostgreSQL's own tools (pg_dump, or the "
            "server's base backups and WAL archive), not by placeharm: docs/deploy.md"
        )

    # -- several app processes (issue 17): sign-in throttling and one drop-folder watcher ----

    def sign_in_tallies(
        self, keys: list[str], for_update: bool = False
    ) -> dict[str, tuple[list[float], int, float, float, list[float]]]:
        """The sign-in tallies kept for `keys` (services/auth.StoreLoginThrottle): key ->
        (failure times in the window, strikes, locked until, last failure or attempt begun,
        start times of the attempts in flight), times as seconds since the epoch. With
        `for_update` (inside a transaction) every process's change of a tally waits for the
        one before it."""
        if for_update:
            self._exec("SELECT pg_advisory_xact_lock(?)", [_THROTTLE_LOCK])
        rows = self._exec(
            "SELECT key, failures, strikes, locked_until, last_failed, pending "
            "FROM sign_in_tallies WHERE key = ANY(?)",
            [keys],
        ).fetchall()
        return {
            str(r[0]): (
                [float(t) for t in r[1]],
                int(r[2]),
                float(r[3]),
                float(r[4]),
                [float(t) for t in r[5] or []],
            )
            for r in rows
        }

    def put_sign_in_tally(
        self,
        key: str,
        failures: list[float],
        strikes: int,
        locked_until: float,
        last: float,
        pending: list[float],
    ) -> None:
        """Keep one tally (not page data: no generation change, no notice)."""
        self._exec(
            "INSERT INTO sign_in_tallies (key, failures, strikes, locked_until, last_failed, "
            "pending) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE "
            "SET failures = excluded.failures, strikes = excluded.strikes, "
            "locked_until = excluded.locked_until, last_failed = excluded.last_failed, "
            "pending = excluded.pending",
            [key, failures, strikes, locked_until, last, pending],
        )

    def forget_sign_in_tallies(
        self, keys: list[str] | None = None, idle_before: float = 0, busy_since: float = 0
    ) -> int:
        """Drop the tallies of `keys`, or else those with no failure since `idle_before`, no
        lock-out running then and no attempt begun since `busy_since` (one still in flight);
        how many."""
        if keys is not None:
            cur = self._exec("DELETE FROM sign_in_tallies WHERE key = ANY(?)", [keys])
        else:
            cur = self._exec(
                "DELETE FROM sign_in_tallies WHERE last_failed < ? AND locked_until <= ? "
                "AND coalesce((SELECT max(p) FROM unnest(pending) AS p), 0) < ?",
                [idle_before, idle_before, busy_since],
            )
        return max(cur.rowcount, 0)

    def hold_lock(self, key: int) -> Callable[[], bool] | None:
        """Try to take a session-level advisory lock, for this store's schema, on a
        connection of its own: None if another connection holds it, else a function that
        says whether it is still held (False once the connection is lost). Closing the
        store releases it. One server process per store watches the drop folder."""
        if self._closed:
            raise store_closed(self.path)
        try:
            con = psycopg.connect(  # keepalives: a dead holder's socket is noticed
                make_conninfo(self._url, **_LISTEN_KEEPALIVES),
                autocommit=True,
                connect_timeout=10,
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store {self.path}") from exc
        try:
            row = con.execute(  # per schema: see DROP_FOLDER_LOCK
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", [key]
            ).fetchone()
        except psycopg.Error as exc:
            with suppress(psycopg.Error):
                con.close()
            raise StoreUnavailable(f"cannot connect to the PostgreSQL store {self.path}") from exc
        if not (row and row[0]):
            con.close()
            return None
        self._keep(con, None)  # closing the store releases it

        def held() -> bool:
            try:
                con.execute("SELECT 1")
            except psycopg.Error:
                return False
            return True

        return held

    def analyze(self) -> bool:
        """Gather the planner's statistics for this store's own tables (its schema's, by
        name: not the whole database's) now, after a bulk load, rather than when autovacuum
        next looks. False if that failed (the cause logged); a table the role does not own
        is skipped by the server with a warning."""
        try:
            tables = [
                str(r[0])
                for r in self._exec(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                ).fetchall()
            ]
            if tables:
                self._exec("ANALYZE " + ", ".join(_quoted_name(t) for t in tables))
        except (psycopg.Error, StoreError) as exc:
            log.warning("ANALYZE after the move failed: %s", _redact(str(exc).strip())[:200])
            return False
        return True


# Map points are rounded to the micro-degree (police.uk's own precision) and then to the
# places asked for, half away from zero, in decimal: the same on both engines (DuckDB's
# round of a double follows its binary value, PostgreSQL's its shortest decimal text, so a
# point on a tie would land 0.0001 degrees apart). DuckDBStore rounds the same way.
_ROUND_LON = "round(round(longitude::NUMERIC, 6), ?)::DOUBLE PRECISION"
_ROUND_LAT = "round(round(latitude::NUMERIC, 6), ?)::DOUBLE PRECISION"


def _scales(decimals: int) -> list[int]:
    """The parameters of _ROUND_LON then _ROUND_LAT for `decimals` places."""
    return [decimals, decimals]


# -- a store opened read-only (issue 17) ------------------------------------------------------
# PostgreSQL's own read-only transactions would also refuse the temporary tables that reads
# join (SOC cells), so the store refuses, before the server sees it, any statement that would
# change a table other than its connection's temporary ones (all named `_...`).
_CHANGES_STORE = re.compile(
    r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|MERGE\s+INTO|ALTER|CREATE|DROP|TRUNCATE|COPY|"
    r"GRANT|REVOKE|COMMENT\s+ON)\s+"
    r"(?!(?:TEMPORARY\s+TABLE\s+|(?:TABLE\s+)?(?:IF\s+EXISTS\s+)?_))",
    re.IGNORECASE,
)


def _read_only_refusal(name: str) -> StoreUnavailable:
    return StoreUnavailable(
        f"the store {name} is open read-only (the read_only setting is on), so nothing can "
        "be imported or changed. Queries work; turn the read_only setting off to change it."
    )


def _upgrade_failed(store: str, version: int, name: str, exc: psycopg.Error) -> StoreError:
    """A migration the server refused, as one message: nothing was changed (the upgrade is
    one transaction), and what to do when the cause is an object of the force's own, such as
    a view over a store table, which PostgreSQL will not let a column's type change under."""
    detail = _redact(str(exc).strip()).splitlines()[0][:300]
    hint = "Check the server's log, then open the store again to retry."
    if isinstance(
        exc, psycopg.errors.FeatureNotSupported | psycopg.errors.DependentObjectsStillExist
    ):
        hint = (
            "A view, rule or policy of your own depends on a store column: drop it, open the "
            "store again to upgrade it, then create it again (docs/deploy.md)."
        )
    return StoreError(
        f"upgrading the PostgreSQL store {store} to schema version {version} ({name}) failed: "
        f"{detail}. Nothing was changed. {hint}"
    )


def _not_permitted(store: str, exc: psycopg.Error) -> StoreUnavailable:
    """The server refused the connection's role (a role with SELECT rights only, as a
    read-only deployment should use): what to do, not an unexpected failure."""
    detail = _redact(str(exc).strip()).splitlines()[0][:200]
    return StoreUnavailable(
        f"the PostgreSQL store {store} refused this: {detail}. The role in the URL may not "
        "change the store: for queries only, turn the read_only setting on; to import, "
        "upgrade or change accounts, connect as a role with write rights (docs/deploy.md)."
    )
