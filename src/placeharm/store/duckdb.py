"""The embedded store: one DuckDB file. All SQL lives here (and in migrations.py), but for
the methods both engines run alike, written once in sqlstore.py (`SqlStore`).

Values always travel as parameters or as registered Arrow tables. The only identifiers built
into SQL text are area-set columns (`area_<name>`), and those names are checked against
`AREA_SET_NAME_RE` first (see `_area_col`).
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa

from placeharm.errors import StoreError, StoreUnavailable, store_closed
from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow, check_area_set_name
from placeharm.store.base import AUDIT_COLUMNS, CELLS_CHECK, EVERYTHING, Scope
from placeharm.store.migrations import LATEST_VERSION, MIGRATIONS
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

# measure sources with a date, and the force-crime flags a measure may test
_SOC_DATED = {
    "force_crimes": ("soc_force_crimes", "recorded_date"),
    "intelligence": ("soc_intelligence", "reported_date"),
    "partner_events": ("soc_partner_events", "event_date"),
    "incidents": ("soc_incidents", "occurred_date"),
}
_SOC_FLAGS = ("firearms_discharged", "cannabis_production")
_CRIME_HISTORY_COLS = ", ".join(
    f"c.{c}"
    for c in [
        "crime_hash",
        "crime_id",
        "record_key",
        "source_kind",
        "month",
        "reported_by",
        "falls_within",
        "longitude",
        "latitude",
        "location",
        "lsoa_code_file",
        "lsoa_name_file",
        "crime_type",
        "last_outcome_category",
        "context",
        "api_id",
        "offence_code",
        "import_id",
        "source_line",
        "vintage",
    ]
)


# A statement that changes data a page may show: any write but to sessions, users, the
# audit log and justifications (signing in must not invalidate every read model).
_WRITES_DATA = re.compile(
    r"\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM|ALTER\s+TABLE|CREATE|DROP|TRUNCATE|COPY)\s+"
    r"(?!(?:TABLE\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"
    r"(?:sessions|users|audit_log|audit_justifications)\b)",
    re.IGNORECASE,
)


# The migration that made the harm cube's table, filled in the same transaction (issue 14).
_CELLS_MIGRATION = 11


class DuckDBStore(SqlStore):
    """A placeharm store in one DuckDB file (or in memory with path ':memory:').

    One store may be used from several threads (the web server does): each thread gets its
    own DuckDB connection to the same database, with its own transaction, so readers run in
    parallel and see committed data only. DuckDB allows concurrent writers only where they
    touch different rows; callers that write from several threads serialise their writes.
    """

    engine = "duckdb"

    def __init__(
        self,
        path: Path | str,
        threads: int = 2,
        memory_limit: str = "1GB",
        read_only: bool | None = None,
    ) -> None:
        self.path = str(path)
        self._local = threading.local()
        self._owner = threading.get_ident()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._cursors_lock = threading.Lock()
        self._generation = 0  # see `generation`
        self._generation_lock = threading.Lock()
        self._closed = False  # after close(): every use raises StoreClosed
        # None: read-only exactly when the file (or its folder) cannot be written (issue 13)
        self.read_only = store_is_read_only(self.path) if read_only is None else read_only
        try:
            self._root = duckdb.connect(self.path, read_only=self.read_only)
        except (duckdb.Error, OSError) as exc:
            raise store_error(exc, self.path) from exc
        try:
            self._run(f"SET threads = {int(threads)}")
            self._run("SET memory_limit = ?", [memory_limit])
            self._run("SET preserve_insertion_order = false")
            # no DuckDB progress bar on a terminal (a big store's migration drew one under
            # the CLI's own messages)
            self._run("SET enable_progress_bar = false")
            # Checkpoint in large steps: a checkpoint per small commit costs ~40 ms each.
            self._run("SET checkpoint_threshold = '512MB'")
            if self.read_only:  # spill to the system's temporary folder, not beside the file
                self._run("SET temp_directory = ?", [tempfile.gettempdir()])
                self._check_read_only_schema()
            else:
                self.migrate()
        except BaseException:
            self._root.close()
            raise

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection: the one opened by the store in its own thread, else a
        cursor (a second connection to the same database) made once per thread."""
        if self._closed:
            raise store_closed(self.path)
        if threading.get_ident() == self._owner:
            return self._root
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            con = self._root.cursor()
            self._local.con = con
            with self._cursors_lock:
                self._cursors.append(con)
        return con

    @property
    def generation(self) -> int:
        """A number that changes whenever committed data a page may show changes (records,
        areas, coverage, populations, SOC, harm indices; not sessions, users or the audit
        log): in-process read models (`placeharm.services.readmodel`) key on it. It starts
        at 0 for each store object; only this process writes a DuckDB file (its lock)."""
        return self._generation

    def _changed(self) -> None:
        with self._generation_lock:
            self._generation += 1

    def close(self) -> None:
        self._closed = True
        with self._cursors_lock:
            for con in self._cursors:
                con.close()
            self._cursors.clear()
        self._root.close()

    def schema_version(self) -> int:
        exists = self._one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        )
        if not exists or not exists[0]:
            return 0
        row = self._one("SELECT coalesce(max(version), 0) FROM schema_migrations")
        return int(row[0]) if row else 0

    def migrate(self) -> list[int]:
        """Apply every migration newer than the file's version, each in its own transaction."""
        self._run(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name VARCHAR, applied_at TIMESTAMP)"
        )
        current = self.schema_version()
        if current > LATEST_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {current}, newer than this "
                f"placeharm understands ({LATEST_VERSION}); upgrade placeharm"
            )
        # first: later migrations then apply to tables in the shape they were written for
        self._reshape_first_release()
        # every migration the file has not recorded, not only those above its newest: some
        # released stores skipped one (6 was merged before 5, 9 before 7 and 8; issue 13)
        done = {int(r[0]) for r in self._run("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            with self.transaction():
                for statement in statements:
                    self._run(statement)
                self._run("INSERT INTO schema_migrations VALUES (?, ?, now())", [version, name])
                self._add_area_columns()
                if version == _CELLS_MIGRATION:  # filled with the table, never left empty
                    self.rebuild_crime_cells()
            applied.append(version)
        return applied

    def _add_area_columns(self) -> None:
        """Every record table has a column per area set (tables added by a migration too)."""
        if not self._one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'area_sets'"
        )[0]:  # type: ignore[index]
            return
        # only the tables that exist yet: migration 2 runs before migration 3 makes the SOC
        # tables, and a v1 store with area sets failed here (issue 13)
        existing = {r[0] for r in self._run("SELECT table_name FROM information_schema.tables")}
        for (name,) in self._run("SELECT name FROM area_sets"):
            for table in RECORD_TABLES:
                if table in existing:
                    self._run(
                        f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {_area_col(name)} VARCHAR"
                    )

    # -- store lifecycle: read-only, snapshots, backups, old shapes (issue 13) ---------------

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One consistent read: every query in the block (on this thread) sees one committed
        state of the store, so a page's "data as of" and its figures come from the same
        imports. A DuckDB transaction is a snapshot (MVCC; it starts at its first query), and
        this thread's queries all run on its own connection. Inside a transaction it joins it.
        """
        with self.transaction():
            yield

    def _guarded(self, step: Callable[[], object]) -> None:
        """begin/commit/rollback, with a full disk or a damaged file as a StoreError."""
        try:
            step()
        except (duckdb.Error, OSError) as exc:
            raise store_error(exc, self.path, during=True) from exc

    def _check_read_only_schema(self) -> None:
        """A read-only store opens only at this placeharm's schema: it cannot be migrated."""
        version = self.schema_version()
        if version > LATEST_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this "
                f"placeharm understands ({LATEST_VERSION}); upgrade placeharm"
            )
        done = (
            {int(r[0]) for r in self._run("SELECT version FROM schema_migrations")}
            if version
            else set()
        )
        if any(v not in done for v, _, _ in MIGRATIONS) or self._first_release_tables():
            raise StoreUnavailable(
                f"the store {self.path} is read-only and its schema (version {version}) is "
                f"older than this placeharm's ({LATEST_VERSION}); a read-only store cannot be "
                "upgraded. Open it once with write access (make the file and its folder "
                "writable, or copy it to a writable folder) so it upgrades, then make it "
                "read-only again."
            )

    def _first_release_tables(self) -> list[str]:
        """Tables still in the shape of the first release's migration 1 (edited afterwards:
        crimes keyed by crime_key, outcomes by outcome_key, coverage without `named`)."""
        rows = self._run(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_name IN ('crimes', 'crime_history', 'outcomes', 'stop_searches', "
            "'coverage')"
        )
        columns: dict[str, set[str]] = {}
        for table, column in rows:
            columns.setdefault(table, set()).add(column)
        old = [t for t in ("crimes", "crime_history") if "crime_key" in columns.get(t, set())]
        if "outcome_key" in columns.get("outcomes", set()):
            old.append("outcomes")
        if "source_file" in columns.get("stop_searches", set()):
            old.append("stop_searches")
        if "coverage" in columns and "named" not in columns["coverage"]:
            old.append("coverage")
        return old

    def _reshape_first_release(self) -> None:
        """Bring tables made by the first release's migration 1 to the released shape of
        migration 1 as it stands (which later code writes), keeping every row: the fix for
        "migration 1 was edited after release" that edits no migration (docs/ingest.md)."""
        old = self._first_release_tables()
        if not old:
            return
        # what the old columns become; every other column is copied by name
        derived = {
            "crimes": {"record_key": "CASE WHEN crime_id IS NULL THEN crime_key END"},
            "crime_history": {"record_key": "CASE WHEN crime_id IS NULL THEN crime_key END"},
            "outcomes": {
                "crime_hash": "coalesce(crime_hash, outcome_hash)",
                # rank among identical outcomes, as ingest.policeuk numbers them (from 0)
                "outcome_ordinal": "(row_number() OVER (PARTITION BY crime_id, month, "
                "outcome_type ORDER BY import_id, source_line) - 1)::INTEGER",
            },
            # a police.uk file is named for its month (services.ingest._month_counts)
            "coverage": {"named": "contains(source_file, strftime(month, '%Y-%m'))"},
        }
        creates = {
            " ".join(st.split()).split(" (")[0].removeprefix("CREATE TABLE "): st
            for st in MIGRATIONS[0][2]
            if st.lstrip().startswith("CREATE TABLE")
        }
        with self.transaction():
            for table in old:
                self._run(f"ALTER TABLE {table} RENAME TO {table}__first_release")
                self._run(creates[table])
                before = self._columns(f"{table}__first_release")
                for column, kind in before.items():  # offence_code, area_<set>, ...
                    if column not in self._columns(table) and column not in _FIRST_RELEASE_ONLY:
                        self._run(f"ALTER TABLE {table} ADD COLUMN {_safe_col(column)} {kind}")
                exprs = []
                for column in self._columns(table):
                    if column in derived.get(table, {}):
                        exprs.append(f"{derived[table][column]} AS {_safe_col(column)}")
                    elif column in before:
                        exprs.append(_safe_col(column))
                self._run(
                    f"INSERT INTO {table} BY NAME SELECT {', '.join(exprs)} "
                    f"FROM {table}__first_release"
                )
                self._run(f"DROP TABLE {table}__first_release")

    def _columns(self, table: str) -> dict[str, str]:
        rows = self._run(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        )
        return {name: kind for name, kind in rows}

    def backup(self, dest: Path) -> dict[str, Any]:
        """Write a consistent copy of the store to the new file `dest`, from this process,
        while it goes on serving: one DuckDB transaction copies every table, sequence and
        constraint (`COPY FROM DATABASE`) into a file attached beside it, which is then
        checked (schema version, rows per table as in the snapshot) and renamed into place.
        Returns the copy's schema version, row counts and size in bytes."""
        dest = Path(dest)
        if dest.exists():
            raise StoreError(f"{dest} exists already; back up to a new file name")
        if not dest.parent.is_dir():
            raise StoreError(f"the folder {dest.parent} does not exist; create it first")
        partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
        partial.unlink(missing_ok=True)
        alias = f"placeharm_backup_{os.getpid()}_{threading.get_ident()}"
        try:
            self._run(f'ATTACH ? AS "{alias}" (READ_WRITE)', [str(partial)])
            try:
                with self.snapshot():  # the counts and the copy see one state
                    source = self._one("SELECT current_database()")
                    assert source is not None
                    counts = _row_counts(self._con)
                    version = self.schema_version()
                    name = str(source[0]).replace('"', '""')
                    self._run(f'COPY FROM DATABASE "{name}" TO "{alias}"')
            finally:
                self._run(f'DETACH "{alias}"')
            copied = verify_store_file(partial)
            if copied["schema_version"] != version or copied["rows"] != counts:
                raise StoreError(
                    f"the copy in {dest.name} does not match the store (schema or row counts "
                    "differ); nothing was kept. Try again."
                )
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, dest)
        except OSError as exc:
            raise store_error(exc, str(dest), during=True) from exc
        finally:
            partial.unlink(missing_ok=True)
            Path(f"{partial}.wal").unlink(missing_ok=True)
        return {**copied, "bytes": dest.stat().st_size}

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All or nothing: commit at the end, roll back on any exception."""
        if self._in_tx:
            yield
            return
        self._guarded(self._con.begin)
        self._in_tx = True
        committed = False
        try:
            yield
            self._maintain_cells()  # the harm cube commits with the records it counts
        except BaseException:
            # gone already if a failed write ended it: the first error is the one to report
            with suppress(duckdb.Error):
                self._con.rollback()
            raise
        else:
            self._guarded(self._con.commit)
            committed = True
        finally:
            self._in_tx = False
            self._local.cells_pending = None
            if getattr(self._local, "wrote", False):
                self._local.wrote = False
                if committed:
                    self._changed()
            hooks, self._local.hooks = getattr(self._local, "hooks", []), []
            for hook in hooks:
                hook(committed)

    def _run(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and fetch everything, so the connection is free (DuckDB 2.x)."""
        try:
            rows = self._con.execute(sql, params or []).fetchall()
        except (duckdb.Error, OSError) as exc:
            raise store_error(exc, self.path, during=True) from exc
        if _WRITES_DATA.match(sql):
            if self._in_tx:
                self._local.wrote = True  # counted when the transaction commits
            else:
                self._changed()
        return rows

    def _register(self, name: str, frame: pl.DataFrame) -> None:
        self._con.register(name, frame.to_arrow())

    def _unregister(self, name: str) -> None:
        """Drop a registered frame. After a failed statement DuckDB refuses even this
        ("Current transaction is aborted"): that must not hide the failure itself, and the
        name is registered afresh (replaced) by its next use."""
        try:
            self._con.unregister(name)
        except duckdb.Error:
            log.debug("could not unregister %s after a failed statement", name)

    # the names SqlStore's methods (store/sqlstore.py) use for a frame a statement joins
    _temp = _register
    _untemp = _unregister

    def _frame(self, sql: str, params: list[object] | None = None) -> pl.DataFrame:
        try:
            table = self._con.sql(sql, params=params or None).to_arrow_table()
        except (duckdb.Error, OSError) as exc:
            raise store_error(exc, self.path, during=True) from exc
        result = pl.from_arrow(table)
        assert isinstance(result, pl.DataFrame)
        return result

    # -- imports and quarantine -------------------------------------------------------------

    def next_import_ids(self, n: int) -> list[int]:
        """`n` fresh import ids, in order."""
        rows = self._run("SELECT nextval('import_id_seq') FROM range(?)", [n])
        return sorted(int(r[0]) for r in rows)

    def log_imports(
        self, entries: list[tuple[ImportResult, dt.datetime, str]], imported_by: str | None = None
    ) -> None:
        """Record each file's account (result, start time, SHA-256 of the file) and who
        imported it (a username, 'drop-folder', or the operating-system user of the CLI)."""
        if not entries:
            return
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
                }
                for r, started, sha in entries
            ],
            schema_overrides={
                "started_at": pl.Datetime("us"),
                "message": pl.String,
                "published_at": pl.Datetime("us"),
                "published_how": pl.String,
                "vintage": pl.String,
            },
        )
        self._register("_imports_in", frame)
        self._run(
            "INSERT INTO imports BY NAME SELECT *, now()::TIMESTAMP AS finished_at, "
            "?::VARCHAR AS imported_by FROM _imports_in",
            [imported_by],
        )
        self._unregister("_imports_in")

    def add_quarantine(self, import_id: int, rows: list[QuarantineRow]) -> None:
        if not rows:
            return
        frame = pl.DataFrame(
            {
                "import_id": [import_id] * len(rows),
                "source_file": [r.source_file for r in rows],
                "line": [r.line for r in rows],
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
        self._register("_quarantine_in", frame)
        self._run("INSERT INTO quarantine BY NAME SELECT * FROM _quarantine_in")
        self._unregister("_quarantine_in")

    def quarantine(
        self, import_id: int | None = None, source_file: str | None = None, limit: int = 1000
    ) -> pl.DataFrame:
        return self._frame(
            "SELECT q.import_id, q.source_file, q.line, q.reason, q.raw_text "
            "FROM quarantine q "
            "WHERE (? IS NULL OR q.import_id = ?) AND (? IS NULL OR contains(q.source_file, ?)) "
            "ORDER BY q.import_id, q.source_file, q.line LIMIT ?",
            [import_id, import_id, source_file, source_file, limit],
        )

    # -- areas -----------------------------------------------------------------------------

    def replace_area_set(self, info: AreaSetInfo, areas: pl.DataFrame) -> None:
        """Store a set's areas (replacing any earlier version) and add its record columns."""
        col = _area_col(info.name)
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
        self._register("_areas_in", areas.with_columns(pl.lit(info.name).alias("set_name")))
        self._run("INSERT INTO areas BY NAME SELECT * FROM _areas_in")
        self._unregister("_areas_in")
        for table in RECORD_TABLES:
            self._run(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {col} VARCHAR")
        self._touch_cells(set_name=info.name)  # a new set's cells: every record unplaced

    def replace_lookup(self, frame: pl.DataFrame) -> int:
        """Store hierarchy rows (from_set, from_code, to_set, to_code, to_name, source_file)."""
        self._register("_lookup_in", frame)
        self._run(
            "DELETE FROM area_lookups USING (SELECT DISTINCT from_set, to_set FROM _lookup_in) k "
            "WHERE area_lookups.from_set = k.from_set AND area_lookups.to_set = k.to_set"
        )
        self._run("INSERT INTO area_lookups BY NAME SELECT * FROM _lookup_in")
        self._unregister("_lookup_in")
        return frame.height

    # -- records ---------------------------------------------------------------------------

    def matching_rows(self, table: str, hash_col: str, hashes: pl.Series) -> pl.DataFrame:
        """Existing rows whose join hash is among `hashes` (with their rowid as `_rid`).

        Two steps so that a large table is scanned on its hash column only.
        """
        if (table, hash_col) not in _HASHED:
            raise StoreError(f"unknown table and hash column {table!r}, {hash_col!r}")
        self._register("_hashes_in", pl.DataFrame({"h": hashes.unique()}))
        try:
            rids = self._frame(
                f"SELECT t.rowid AS _rid FROM {table} t JOIN _hashes_in i ON t.{hash_col} = i.h"
            )
        finally:
            self._unregister("_hashes_in")
        if rids.is_empty():
            return pl.DataFrame()
        self._register("_rids_in", rids)
        try:
            return self._frame(
                f"SELECT t.rowid AS _rid, t.* FROM {table} t "
                "WHERE t.rowid IN (SELECT _rid FROM _rids_in)"
            )
        finally:
            self._unregister("_rids_in")

    def insert_rows(self, table: str, frame: pl.DataFrame) -> None:
        tbl = _table(table, also=("outcomes",))
        with self.transaction():  # crimes: their cells are recounted at its commit
            # BY NAME fails on a column the table lacks: nothing is silently dropped.
            self._register("_rows_in", frame)
            self._run(f"INSERT INTO {tbl} BY NAME SELECT * FROM _rows_in")
            self._unregister("_rows_in")
            if tbl == "crimes" and frame.height:
                self._touch_cells(months=frame["month"])

    def update_crimes(self, frame: pl.DataFrame, sources: dict[int, str]) -> None:
        """Keep each crime's previous version in crime_history, then overwrite it in place.

        `frame` carries `_rid` (the stored row) and the new values, including the revising
        `import_id`, which the history row records as `replaced_by_import`. `sources` names
        the files of imports not yet logged (the same run), so the replaced version keeps its
        source file even when it arrived moments earlier.
        """
        self._register("_upd_in", frame)
        # a revision moves records between cells: recount their old months and new ones
        old_months = self._frame(
            "SELECT DISTINCT c.month FROM crimes c JOIN _upd_in u ON c.rowid = u._rid"
        )["month"]
        self._register(
            "_src_in",
            pl.DataFrame(
                {"import_id": list(sources), "source_file": list(sources.values())},
                schema={"import_id": pl.Int64, "source_file": pl.String},
            ),
        )
        self._run(
            f"INSERT INTO crime_history BY NAME SELECT {_CRIME_HISTORY_COLS}, "
            "coalesce(i.source_file, s.source_file) AS source_file, "
            "now() AS replaced_at, u.import_id AS replaced_by_import "
            "FROM crimes c JOIN _upd_in u ON c.rowid = u._rid "
            "LEFT JOIN imports i ON i.import_id = c.import_id "
            "LEFT JOIN _src_in s ON s.import_id = c.import_id"
        )
        self._unregister("_src_in")
        columns = [c for c in frame.columns if c != "_rid"]
        assignments = ", ".join(f"{_safe_col(c)} = u.{_safe_col(c)}" for c in columns)
        self._run(f"UPDATE crimes SET {assignments} FROM _upd_in u WHERE crimes.rowid = u._rid")
        self._unregister("_upd_in")
        self._touch_cells(months=pl.concat([old_months, frame["month"]]))

    # -- vintages and derived state (issue 13) ---------------------------------------------

    # Each crime's latest outcome: the outcome of its latest outcome month (the last line of
    # that month's file breaks a tie), NULL without outcomes. One definition for the refresh
    # and for `placeharm check`.
    _LATEST_OUTCOME = """
        SELECT c.rowid AS _rid, o.outcome_type, o.month
        FROM crimes c LEFT JOIN (
            SELECT o.crime_hash, o.crime_id,
                   arg_max(o.outcome_type, (o.month, o.source_line)) AS outcome_type,
                   max(o.month) AS month
            FROM outcomes o {where}
            GROUP BY o.crime_hash, o.crime_id
        ) o ON c.crime_hash = o.crime_hash AND c.crime_id = o.crime_id
        {crime_where}
    """

    def refresh_latest_outcomes(self, hashes: pl.Series | None = None) -> int:
        """Set crimes' latest outcomes from the outcomes held (only the crimes whose join
        hash is in `hashes`, when given); return how many changed."""
        if hashes is not None:
            self._register("_touched_in", pl.DataFrame({"h": hashes.unique()}))
        try:
            row = self._one(
                f"""
                UPDATE crimes SET latest_outcome = o.outcome_type, latest_outcome_month = o.month
                FROM ({self._latest_sql(hashes is not None)}) o
                WHERE crimes.rowid = o._rid
                  AND (crimes.latest_outcome IS DISTINCT FROM o.outcome_type
                       OR crimes.latest_outcome_month IS DISTINCT FROM o.month)
                """
            )
        finally:
            if hashes is not None:
                self._unregister("_touched_in")
        return int(str(row[0])) if row else 0

    def update_crimes_provenance(self, frame: pl.DataFrame) -> None:
        """A newer download confirmed crimes unchanged: record its vintage, import and line
        (frame: _rid, vintage, import_id, source_line)."""
        self._register("_prov_in", frame)
        self._run(
            "UPDATE crimes SET vintage = u.vintage, import_id = u.import_id, "
            "source_line = u.source_line FROM _prov_in u WHERE crimes.rowid = u._rid"
        )
        self._unregister("_prov_in")

    def delete_history_rows(self, table: str, rids: pl.Series) -> None:
        """Delete versions by rowid from crime_history, outcome_history or outcomes (a set
        of outcomes superseded by a newer download, kept in outcome_history first)."""
        tbl = _table(table, also=self._VERSIONED)
        self._register("_del_in", pl.DataFrame({"r": rids.cast(pl.Int64)}))
        self._run(f"DELETE FROM {tbl} WHERE rowid IN (SELECT r FROM _del_in)")
        self._unregister("_del_in")

    def insert_history_rows(self, table: str, frame: pl.DataFrame) -> None:
        """Add versions to crime_history or outcome_history; a version of an earlier run
        gets its source file from the import log."""
        tbl = _table(table, also=self._VERSIONED[:2])
        self._register("_hist_in", frame)
        self._run(
            f"INSERT INTO {tbl} BY NAME SELECT h.* EXCLUDE (source_file), "
            "coalesce(h.source_file, i.source_file) AS source_file "
            "FROM _hist_in h LEFT JOIN imports i ON i.import_id = h.import_id"
        )
        self._unregister("_hist_in")

    def crime_versions(self, crime_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """A crime's versions (current first, then its history, newest vintage first) and its
        outcomes (held and superseded), each with its import's file and vintage."""
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
            ) ORDER BY version = 'current' DESC, vintage DESC NULLS LAST, month
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
            ) ORDER BY month, version, vintage DESC NULLS LAST, source_line
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
                "SELECT count(*) FROM quarantine q ANTI JOIN imports i USING (import_id)"
            ),
        }
        for table in ("crimes", "outcomes", "stop_searches", "crime_history", "outcome_history"):
            checks[f"{table} rows without their import"] = (
                f"SELECT count(*) FROM {table} t WHERE t.import_id IS NOT NULL "
                "AND t.import_id NOT IN (SELECT import_id FROM imports)"
            )
        checks["coverage months without their import"] = (
            "SELECT count(*) FROM coverage c ANTI JOIN imports i USING (import_id)"
        )
        checks["crimes with a stale latest outcome"] = (
            f"SELECT count(*) FROM crimes c JOIN ({self._latest_sql(False)}) o "
            "ON c.rowid = o._rid WHERE c.latest_outcome IS DISTINCT FROM o.outcome_type "
            "OR c.latest_outcome_month IS DISTINCT FROM o.month"
        )
        # a crime's other versions are kept once each, never the current one again (rows
        # written before vintages existed, migration 10, kept every replacement: not checked)
        version = (
            "coalesce(crime_id, record_key), source_kind, month, reported_by, falls_within, "
            "longitude, latitude, location, lsoa_code_file, lsoa_name_file, crime_type, "
            "last_outcome_category, context"
        )
        checks["crime versions kept twice in crime_history"] = (
            f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {version} "
            "FROM crime_history WHERE vintage IS NOT NULL)) FROM crime_history "
            "WHERE vintage IS NOT NULL"
        )
        checks["crime_history versions equal to the crime's current version"] = (
            f"SELECT count(*) FROM (SELECT {version} FROM crime_history "
            f"WHERE vintage IS NOT NULL INTERSECT ALL SELECT {version} FROM crimes)"
        )
        sets = [s.name for s in self.area_sets()]
        for table in ("crimes", "stop_searches"):
            located = (
                f"SELECT count(*) FROM {table} WHERE located IS DISTINCT FROM "
                "(longitude IS NOT NULL AND latitude IS NOT NULL)"
            )
            checks[f"{table} with a wrong located flag"] = located
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
        """Write one set's codes (frame: _rid, code, reconciled) and refresh in_area flags."""
        tbl = _table(table)
        col = _area_col(set_name)
        self._register("_codes_in", frame)
        extra = ", lsoa_reconciled = c.reconciled" if tbl == "crimes" and set_name == "lsoa" else ""
        self._run(
            f"UPDATE {tbl} SET {col} = c.code{extra} FROM _codes_in c WHERE {tbl}.rowid = c._rid"
        )
        self._unregister("_codes_in")
        if tbl == "crimes":
            self._touch_cells(set_name=set_name)
        self.refresh_in_area(tbl)

    def refresh_in_area(self, table: str) -> None:
        tbl = _table(table)
        sets = [s.name for s in self.area_sets()]
        if not sets:
            return
        any_code = " OR ".join(f"{_area_col(s)} IS NOT NULL" for s in sets)
        self._run(f"UPDATE {tbl} SET in_area = ({any_code}) WHERE located")

    # -- coverage and counts ---------------------------------------------------------------

    def record_coverage(self, frame: pl.DataFrame) -> None:
        """Upsert coverage (source_kind, force, month, rows, import_id, source_file, named).

        A file named for its month is authoritative: a later such file replaces it, an
        unnamed extract never does (it only fills a month nothing named covers). API
        coverage (source_kind 'api') counts the API records held for its month.
        """
        latest = frame.sort("named", "import_id").unique(
            ["source_kind", "force", "month"], keep="last", maintain_order=True
        )
        self._register("_coverage_in", latest)
        self._run(
            "INSERT INTO coverage BY NAME SELECT * FROM _coverage_in "
            "ON CONFLICT (source_kind, force, month) DO UPDATE SET rows = excluded.rows, "
            "import_id = excluded.import_id, source_file = excluded.source_file, "
            "named = excluded.named WHERE excluded.named OR NOT coverage.named"
        )
        # An API month is covered by many responses (one area each, a crime often in two):
        # its rows are the API records held for the month, not the last response's.
        self._run(
            "UPDATE coverage SET rows = (SELECT count(*) FROM crimes c "
            "WHERE c.source_kind = 'api' AND c.month = coverage.month) "
            "WHERE source_kind = 'api' AND month IN "
            "(SELECT month FROM _coverage_in WHERE source_kind = 'api')"
        )
        self._unregister("_coverage_in")

    def counts_by_area_month(
        self,
        set_name: str,
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None,
    ) -> pl.DataFrame:
        """Crimes per (area_code, month) for one set; records outside the set are `None`."""
        col = _area_col(set_name)
        return self._frame(
            f"SELECT {col} AS area_code, month, count(*)::BIGINT AS records FROM crimes "
            "WHERE month BETWEEN ? AND ? AND (? IS NULL OR list_contains(?, crime_type)) "
            "GROUP BY ALL",
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
        """Records per area (and month), crime type and offence code: what harm is built on.

        Records outside the set have a null area_code; police.uk records a null offence_code.
        """
        col = _area_col(set_name)
        month = "month, " if by_month else ""
        return self._frame(
            f"SELECT {col} AS area_code, {month}crime_type, offence_code, "
            "count(*)::BIGINT AS records FROM crimes "
            "WHERE month BETWEEN ? AND ? AND (? IS NULL OR list_contains(?, crime_type)) "
            "AND (? IS NULL OR list_contains(?, offence_code)) GROUP BY ALL",
            [first, last, crime_types, crime_types, offence_codes, offence_codes],
        )

    def crime_cells(self, set_name: str) -> pl.DataFrame:
        """The harm cube of one area set: records per area_code (null: no location, or
        outside every area of the set), month, crime_type and offence_code (null for
        police.uk), every month held. Small however many records (areas x months x types).
        Read from the maintained table (`crime_cells`); `_cells_sql` is its recount."""
        check_area_set_name(set_name)
        return self._frame(
            "SELECT area_code, month, crime_type, offence_code, records FROM crime_cells "
            "WHERE set_name = ? ORDER BY ALL",
            [set_name],
        )

    # -- the harm cube, maintained (issue 14) ----------------------------------------------
    #
    # `crime_cells` holds crimes per (area set, area, month, crime type, offence code). Every
    # write to `crimes` notes what it touched (`_touch_cells`): the months of the rows it
    # wrote, and the old months of rows it revised; an area set whose codes were written is
    # touched whole. At the commit of the outermost transaction (`transaction`) the touched
    # cells are deleted and recounted from `crimes` in the same transaction
    # (`_maintain_cells`), so a rolled-back import leaves the cells as they were.

    def _maintain_cells(self) -> None:
        """Recount the touched cells (see `_touch_cells`), inside the caller's transaction."""
        pending = getattr(self._local, "cells_pending", None)
        self._local.cells_pending = None
        if not pending or not (pending[0] or pending[1]):
            return
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
                "DELETE FROM crime_cells WHERE list_contains(?, set_name) "
                "AND month BETWEEN ? AND ? AND list_contains(?, month)",
                [rest, months[0], months[-1], months],
            )
            sql, params = self._cells_sql(rest, months)
            self._run(f"INSERT INTO crime_cells {sql}", params)

    def _cells_sql(
        self, sets: list[str], months: list[dt.date] | None = None
    ) -> tuple[str, list[object]]:
        """The recount of the cells of `sets` (in `months`, else every month) from `crimes`:
        a query of set_name, area_code, month, crime_type, offence_code, records."""
        where, bounds = "", []
        if months is not None:  # BETWEEN prunes row groups (crimes are mostly month-ordered)
            where = "WHERE month BETWEEN ? AND ? AND list_contains(?, month)"
            bounds = [months[0], months[-1], months]
        if not sets:
            return (
                "SELECT NULL::VARCHAR AS set_name, NULL::VARCHAR AS area_code, "
                "NULL::DATE AS month, NULL::VARCHAR AS crime_type, NULL::VARCHAR AS "
                "offence_code, NULL::BIGINT AS records WHERE false",
                [],
            )
        # One scan for every set: a grouping set per set's area column (measured at 10M
        # records, three sets: 0.8 s against 2.0 s for a GROUP BY per set, UNION ALL).
        cols = [_area_col(name) for name in sets]
        which = " ".join(f"WHEN grouping({c}) = 0 THEN ?" for c in cols)
        code = " ".join(f"WHEN grouping({c}) = 0 THEN {c}" for c in cols)
        grouping = ", ".join(f"({c}, month, crime_type, offence_code)" for c in cols)
        sql = (
            f"SELECT (CASE {which} END)::VARCHAR AS set_name, CASE {code} END AS area_code, "
            "month, crime_type, offence_code, count(*)::BIGINT AS records "
            f"FROM crimes {where} GROUP BY GROUPING SETS ({grouping})"
        )
        return sql, [*sets, *bounds]

    def _cells_differing(self) -> int:
        """Cells (held or recounted) that a full recount of `crimes` does not match: 0 when
        the cube holds exactly the recount (`placeharm check`)."""
        sql, params = self._cells_sql([s.name for s in self.area_sets()])
        key = ("set_name", "area_code", "month", "crime_type", "offence_code")
        on = " AND ".join(f"h.{c} IS NOT DISTINCT FROM r.{c}" for c in key)
        # a cell held twice (its key repeated) is wrong even if one copy matches
        row = self._one(
            f"SELECT (SELECT count(*) FROM crime_cells h FULL JOIN ({sql}) r ON {on} "
            "WHERE h.records IS DISTINCT FROM r.records) + (SELECT count(*) - "
            f"count(DISTINCT ({', '.join(key)})) FROM crime_cells)",
            params,
        )
        return int(row[0]) if row else 0

    def rebuild_crime_cells(self) -> int:
        """Recount every cell of the harm cube from `crimes` (in one transaction): after a
        store was built outside placeharm (the benchmarks build theirs in DuckDB), and by
        `placeharm check --repair`. Returns the number of cells."""
        with self.transaction():
            self._run("DELETE FROM crime_cells")
            sql, params = self._cells_sql([s.name for s in self.area_sets()])
            self._run(f"INSERT INTO crime_cells {sql}", params)
            self._local.cells_pending = None  # all recounted
            row = self._one("SELECT count(*) FROM crime_cells")
        return int(row[0]) if row else 0

    def replace_populations(self, set_name: str, year: int, frame: pl.DataFrame) -> int:
        """Store a set's populations for one year (area_code, population, method, source_file)."""
        self._register("_pop_in", frame)
        try:
            self._run(
                "DELETE FROM area_populations WHERE set_name = ? AND year = ?", [set_name, year]
            )
            self._run(
                "INSERT INTO area_populations SELECT ?, area_code, ?, population, method, "
                "source_file FROM _pop_in",
                [set_name, year],
            )
        finally:
            self._unregister("_pop_in")
        return frame.height

    # -- SOC overlay -------------------------------------------------------------------------

    def soc_frame(
        self,
        table: str,
        set_name: str | None = None,
        between: tuple[str, dt.date, dt.date] | None = None,
        columns: list[str] | None = None,
        area_code: str | None = None,
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """Rows of a SOC table (with `area_code` for `set_name` if it has locations), all or
        those whose date column `between[0]` lies in [between[1], between[2]], and only
        those in area `area_code` of the set if it is given, of those `scope` lets the
        reader see; all columns or `columns`."""
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
            f"SELECT {cols}{area} FROM {table} WHERE {' AND '.join(where)}", params or None
        )

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
                + " OR ".join("contains(';' || coalesce(t.topics, '') || ';', ?)" for _ in topics)
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

    def soc_scores(
        self,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        dated: dict[str, list[tuple[str, dict[str, Any], float | None]]],
        residents: list[tuple[str, list[str], float]],
        weights: tuple[pl.DataFrame, pl.DataFrame],
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame:
        """Per (area_code, period): every measure's count and harm, in one statement.

        dated: source -> (id, filters, fixed weight or None for the record's own weight);
        residents: (id, flags_any, weight) of nominal measures; weights: (offence_code,
        weight) and (crime_type, weight) frames for records' own weights; scope: the rows
        the reader may count (every table read, links and homes included).
        """
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
            f"(SELECT * FROM ({q}) WHERE period IS NOT NULL) q{i}"
            + (" USING (area_code, period)" if i else "")
            for i, (q, _) in enumerate(parts)
        )
        params = [p for _, ps in parts for p in ps]
        self._register("_code_w", weights[0])
        self._register("_type_w", weights[1])
        try:
            return self._frame(f"SELECT * FROM {sql}", params)
        finally:
            self._unregister("_code_w")
            self._unregister("_type_w")

    def _soc_sums_query(
        self,
        source: str,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        measures: list[tuple[str, dict[str, Any], float | None]],
        weights: bool,
        scope: Scope = EVERYTHING,
    ) -> tuple[str, list[object]]:
        """SQL for one source's per (area_code, period) counts and harm (see soc_scores)."""
        table, date_col = _SOC_DATED[source]
        select: list[str] = [f"{_area_col(set_name)} AS area_code"]
        params: list[object] = []
        case = ["CASE"]
        for name, (first, last) in periods.items():
            case.append(f"WHEN t.{date_col} BETWEEN ? AND ? THEN ?")
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
                    f"::DOUBLE AS {harm}"
                )
                params += cond_params
            else:
                select.append(f"(count(*) FILTER (WHERE {condition})) * ?::DOUBLE AS {harm}")
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
                f"WHERE {' AND '.join(seen) or 'TRUE'} GROUP BY nc.crime_ref) "
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
            f"WHERE {' AND '.join(where)} GROUP BY ALL"
        )
        return sql, [*cte_params, *params, *where_params]

    _NOMINAL_FLAGS = (
        "ocg_member",
        "priority_individual",
        "pcg_member",
        "ucg_member",
        "cce_perpetrator",
        "cce_victim",
        "cse_perpetrator",
        "cse_victim",
    )

    def _resident_query(
        self,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        measures: list[tuple[str, list[str], float]],
        scope: Scope = EVERYTHING,
    ) -> tuple[str, list[object]]:
        """Per (area_code, period): nominals living there (home address current in the
        period, the latest if several) with any of each measure's flags, and count x weight.
        Only nominals and addresses `scope` lets the reader see; a flag it masks is false.

        measures: (id, flags_any, weight)."""
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
                f"FROM soc_addresses a WHERE {' AND '.join(homes)} "
                "AND (a.from_date IS NULL OR a.from_date <= ?) "
                "AND (a.to_date IS NULL OR a.to_date >= ?)) WHERE k = 1"
            )
            params += [name, *home_params, last, first]
        select = ["h.area_code", "h.period"]
        for mid, flags, _weight in measures:
            bad = [f for f in flags if f not in self._NOMINAL_FLAGS]
            if bad:
                raise StoreError(f"unknown nominal flag {bad[0]!r}")
            shown = [f"n.{f}" for f in flags if not scope.hides("soc_nominals", f)]
            test = " OR ".join(shown) or ("FALSE" if flags else "TRUE")
            select.append(f"count(*) FILTER (WHERE {test})::BIGINT AS {_safe_col(mid)}")
            select.append(
                f"(count(*) FILTER (WHERE {test})) * ?::DOUBLE AS {_safe_col(mid + '_harm')}"
            )
        weights = [w for _, _, w in measures]
        people: list[str] = ["TRUE"]
        people_params: list[object] = []
        _scoped("soc_nominals", scope, people, people_params, "n")
        sql = (
            f"SELECT {', '.join(select)} FROM ({' UNION ALL '.join(unions)}) h "
            "JOIN soc_nominals n ON n.nominal_id = h.nominal_id "
            f"WHERE {' AND '.join(people)} GROUP BY ALL"
        )
        return sql, [*weights, *params, *people_params]

    # -- SOC cells (issue 14): the read side of the SOC measures, placeharm.soc.cells --------

    def soc_cells(self, set_name: str) -> dict[str, pl.DataFrame]:
        """Counts of the dated SOC records per area of `set_name` (null: not located or in
        no area) x month x every column a measure may filter on or a scope may hide, one
        statement per table; and the home addresses of nominals with their flags.

        Cells carry no measure definitions: a measure is a filter on them at query time.
        force_crimes: offence_code, crime_type, the two flags, `links` (the distinct
        [role, group_type] pairs of group members linked to the crime) and `member_linked`
        (linked to any member of any group); intelligence: topics, handling_code;
        partner_events: partner, event_type, handling_code; incidents: incident_type;
        disruptions: none. homes: one row per home address (nominal_id, area_code,
        from_date, to_date, address_id and the nominal's eight flags); `members`: nominal ids
        with a group membership; `group_homes`: (area_code, group_id, nominal_id) of each
        member with a home address in the area; `groups`: the groups shown with them."""
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
        out: dict[str, pl.DataFrame] = {
            "force_crimes": self._frame(
                f"""WITH l AS (
                        SELECT nc.crime_ref,
                               list_sort(list(DISTINCT [nc.role, g.group_type])) AS links
                        FROM soc_nominal_crimes nc
                        JOIN soc_memberships m ON m.nominal_id = nc.nominal_id
                        JOIN soc_groups g ON g.group_id = m.group_id
                        GROUP BY nc.crime_ref),
                    ml AS (
                        SELECT DISTINCT nc.crime_ref FROM soc_nominal_crimes nc
                        SEMI JOIN soc_memberships m ON m.nominal_id = nc.nominal_id)
                    SELECT {area}, {month("recorded_date")}, t.offence_code, t.crime_type,
                           coalesce(t.firearms_discharged, FALSE) AS firearms_discharged,
                           coalesce(t.cannabis_production, FALSE) AS cannabis_production,
                           coalesce(l.links, []::VARCHAR[][]) AS links,
                           ml.crime_ref IS NOT NULL AS member_linked,
                           count(*)::BIGINT AS records
                    FROM soc_force_crimes t
                    LEFT JOIN l ON l.crime_ref = t.crime_ref
                    LEFT JOIN ml ON ml.crime_ref = t.crime_ref
                    GROUP BY ALL"""
            )
        }
        for source, (table, date_col, columns) in dims.items():
            more = f", {columns}" if columns else ""
            out[source] = self._frame(
                f"SELECT {area}, {month(date_col)}{more}, count(*)::BIGINT AS records "
                f"FROM {table} t GROUP BY ALL"
            )
        flags = ", ".join(f"n.{f}" for f in self._NOMINAL_FLAGS)
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

    def soc_summary(self) -> tuple[dt.date | None, dt.date | None, bool]:
        """First and last date of the dated SOC records, and whether any nominal is synthetic."""
        row = self._one(
            """SELECT min(d), max(d), (SELECT coalesce(bool_or(synthetic), FALSE)
                                      FROM soc_nominals)
               FROM (SELECT recorded_date AS d FROM soc_force_crimes
                     UNION ALL SELECT reported_date FROM soc_intelligence
                     UNION ALL SELECT occurred_date FROM soc_incidents)"""
        )
        if row is None:
            return None, None, False
        return row[0], row[1], bool(row[2])

    def soc_keyed_rows(self, table: str, key: list[str], keys: pl.DataFrame) -> pl.DataFrame:
        """Stored rows of a SOC table whose key is among `keys` (with rowid as `_rid`)."""
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        cols = [_safe_col(c) for c in key]
        self._register("_keys_in", keys.select(key))
        try:
            on = " AND ".join(f"t.{c} = k.{c}" for c in cols)
            return self._frame(
                f"SELECT t.rowid AS _rid, t.* FROM {table} t SEMI JOIN _keys_in k ON {on}"
            )
        finally:
            self._unregister("_keys_in")

    def soc_insert(self, table: str, frame: pl.DataFrame) -> None:
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        self._register("_soc_in", frame)
        try:
            self._run(f"INSERT INTO {table} BY NAME SELECT * FROM _soc_in")
        finally:
            self._unregister("_soc_in")

    def soc_update(self, table: str, frame: pl.DataFrame, history: pl.DataFrame) -> None:
        """Overwrite rows (frame: `_rid` and new values) and keep their previous versions
        (history: entity, entity_key, previous JSON text, source_file, replaced_by_import)."""
        if table not in SOC_TABLES:
            raise StoreError(f"unknown SOC table {table!r}")
        self._register("_hist_in", history)
        self._register("_upd_in", frame)
        try:
            self._run(
                "INSERT INTO soc_history SELECT entity, entity_key, previous::JSON, source_file, "
                "now(), replaced_by_import FROM _hist_in"
            )
            columns = [c for c in frame.columns if c != "_rid"]
            sets = ", ".join(f"{_safe_col(c)} = u.{_safe_col(c)}" for c in columns)
            self._run(f"UPDATE {table} SET {sets} FROM _upd_in u WHERE {table}.rowid = u._rid")
        finally:
            self._unregister("_hist_in")
            self._unregister("_upd_in")

    def soc_history(self, entity: str | None = None) -> pl.DataFrame:
        return self._frame(
            "SELECT entity, entity_key, previous::VARCHAR AS previous, source_file, replaced_at, "
            "replaced_by_import FROM soc_history WHERE ? IS NULL OR entity = ? "
            "ORDER BY replaced_at",
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
        """Records per (area_code, month, kind) of a located table between two dates, in
        every area of the set or in the one area `code`, of those `scope` lets the reader see.

        kind: crime_type for crimes, else NULL.
        """
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
        where = " AND ".join([where, *seen])
        return self._frame(
            f"SELECT {col} AS area_code, date_trunc('month', {date})::DATE AS month, "
            f"{kind} AS kind, count(*)::BIGINT AS records FROM {tbl} "
            f"WHERE {where} GROUP BY ALL",
            params,
        )

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
        """One page of a record table and the number of matching rows. `equals`: exact
        conditions (column, value); `exclude`: (column, values) left out; `include`:
        (column, values) kept; `scope`: the rows the reader may see. Column names are
        checked identifiers; every value is a parameter.

        `sort_counts` (issue 14): how many rows match per value of the sort column (for
        crimes by month, from the harm cube): then the total is their sum, not a count, and
        the page is read from the values it falls in only, so at 10M records no request
        counts, sorts or skips (OFFSET) more than the rows of those few months."""
        cols = ", ".join(_safe_col(c) for c in columns)
        clause, params = _records_where(
            table, first, last, date_col, area, search, equals, exclude, include, scope
        )
        # rowid breaks ties, so pages do not overlap or skip rows among equal sort values
        order = f"{_safe_col(sort)} {'DESC' if descending else 'ASC'} NULLS LAST, rowid"
        if sort_counts is not None:
            return self._page_of_counts(
                table, cols, clause, params, sort, order, limit, offset, sort_counts, descending
            )
        total = self._one(f"SELECT count(*) FROM {table} WHERE {clause}", params)
        frame = self._frame(
            f"SELECT {cols} FROM {table} WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return frame, int(total[0]) if total else 0

    # -- pages at any scale: read methods (issue 14) ------------------------------------------

    def _page_of_counts(
        self,
        table: str,
        cols: str,
        clause: str,
        params: list[object],
        sort: str,
        order: str,
        limit: int,
        offset: int,
        sort_counts: list[tuple[Any, int]],
        descending: bool,
    ) -> tuple[pl.DataFrame, int]:
        """records_page from the rows per sort value: find the values the page's rows
        [offset, offset + limit) fall in, in the page's order; read those values' rows only
        (their zone maps skip the rest), sorting just the sort column and rowid, and fetch
        the page's columns for its rows alone."""
        ordered = sorted(((v, n) for v, n in sort_counts if n > 0), reverse=descending)
        chosen: list[Any] = []
        before = seen = 0  # rows in the values before the first chosen; rows so far
        for value, rows in ordered:
            seen += rows
            if seen <= offset:
                before = seen
                continue
            chosen.append(value)
            if seen >= offset + limit:
                break
        total = sum(n for _, n in ordered)
        if not chosen:  # past the last page: no rows, the columns still named
            bound, bounds = "FALSE", []
        else:
            bound, bounds = f"{_safe_col(sort)} BETWEEN ? AND ?", [min(chosen), max(chosen)]
        if len(chosen) == 1:  # one value of the sort column: its rows in rowid order
            order = "rowid"
        frame = self._frame(
            f"SELECT {cols} FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
            f"WHERE {clause} AND {bound} ORDER BY {order} LIMIT ? OFFSET ?) ORDER BY {order}",
            [*params, *bounds, limit, offset - before],
        )
        return frame, total

    def crime_point_details(self, area: tuple[str, str], decimals: int = 4) -> pl.DataFrame:
        """Located crimes of one area counted by point (rounded to `decimals` places), month,
        crime_type, its "on or near" street (`location`) and latest outcome, every month held:
        what a map point's details say (issue 15), read once per area and generation."""
        return self._frame(
            "SELECT month, crime_type, "
            "round(longitude::DECIMAL(10, 6), ?)::DOUBLE AS longitude, "
            "round(latitude::DECIMAL(10, 6), ?)::DOUBLE AS latitude, location, latest_outcome, "
            "count(*)::INTEGER AS crimes FROM crimes "
            f"WHERE {_area_col(area[0])} = ? "
            "AND longitude IS NOT NULL AND latitude IS NOT NULL GROUP BY ALL",
            [decimals, decimals, area[1]],
        )

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
        """Every row `records_page` would page through, in its order, as frames of at most
        `batch_rows` rows, and how many there are (issue 15: an export of every matching
        row). Read on a connection of its own in one transaction, so the count and the rows
        are one snapshot however long the download takes, and never all in memory. Close
        the iterator (or read it to the end) to end the transaction."""
        cols = ", ".join(_safe_col(c) for c in columns)
        clause, params = _records_where(
            table, first, last, date_col, area, search, None, None, include, scope
        )
        order = f"{_safe_col(sort)} {'DESC' if descending else 'ASC'} NULLS LAST, rowid"
        if self._closed:
            raise store_closed(self.path)
        con = self._root.cursor()
        try:
            con.begin()
            counted = con.execute(f"SELECT count(*) FROM {table} WHERE {clause}", params)
            total = int(counted.fetchall()[0][0])
            reader = con.sql(
                f"SELECT {cols} FROM {table} WHERE {clause} ORDER BY {order}", params=params
            ).to_arrow_reader(batch_rows)
        except (duckdb.Error, OSError) as exc:
            con.close()
            raise store_error(exc, self.path, during=True) from exc
        except BaseException:
            con.close()
            raise

        def batches() -> Iterator[pl.DataFrame]:
            try:
                for batch in reader or ():
                    frame = pl.from_arrow(batch)
                    assert isinstance(frame, pl.DataFrame)
                    yield frame
            except (duckdb.Error, OSError) as exc:
                raise store_error(exc, self.path, during=True) from exc
            finally:
                with suppress(duckdb.Error):
                    con.rollback()
                con.close()

        return total, batches()

    def crime_locations(
        self,
        area: tuple[str, str],
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None = None,
        decimals: int = 4,
    ) -> pl.DataFrame:
        """Located crimes of one area in a period (of some types, or all), counted by point
        (rounded to `decimals` places): every crime, in a few thousand rows at most."""
        return self._frame(
            "SELECT round(longitude::DECIMAL(10, 6), ?)::DOUBLE AS longitude, "
            "round(latitude::DECIMAL(10, 6), ?)::DOUBLE AS latitude, "
            "count(*)::INTEGER AS crimes FROM crimes "
            f"WHERE {_area_col(area[0])} = ? AND month BETWEEN ? AND ? "
            "AND (? IS NULL OR list_contains(?, crime_type)) "
            "AND longitude IS NOT NULL AND latitude IS NOT NULL "
            "GROUP BY ALL ORDER BY crimes DESC, longitude, latitude",
            [decimals, decimals, area[1], first, last, crime_types, crime_types],
        )

    # -- radius search -----------------------------------------------------------------------

    def addresses_matching(
        self, address_id: str | None, text: str | None, limit: int
    ) -> tuple[pl.DataFrame, int]:
        """SOC addresses (one row per address_id: address, location, how many nominals are
        linked) with this id, or whose text equals `text` ignoring case (`exact`) or contains
        it; exact matches first, then by address. At most `limit` rows, and how many match."""
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
            where, params = "address ILIKE ? ESCAPE '\\'", [text, pattern]
            exact = "lower(address) = lower(?)"
        grouped = (
            f"SELECT address_id, any_value(address) AS address, "
            f"bool_or({exact}) AS exact, any_value(latitude) AS latitude, "
            "any_value(longitude) AS longitude, bool_or(located) AS located, "
            "count(DISTINCT nominal_id)::INTEGER AS nominals "
            f"FROM soc_addresses WHERE {where} GROUP BY address_id"
        )
        total = self._one(f"SELECT count(*) FROM ({grouped})", params)
        frame = self._frame(
            f"SELECT * FROM ({grouped}) ORDER BY exact DESC, address, address_id LIMIT ?",
            [*params, limit],
        )
        return frame, int(total[0]) if total else 0

    # -- MoPI reviews (issue 12) -------------------------------------------------------------

    def mopi_overdue(
        self, today: dt.date, kinds: tuple[str, ...], scope: Scope = EVERYTHING
    ) -> pl.DataFrame:
        """Records of `kinds` (nominals, intelligence) whose MoPI review date is before
        `today`, of those `scope` lets the reader see: kind, record_id, review_date,
        days_overdue; most overdue first."""
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
                f"datediff('day', mopi_review_date, ?::DATE)::BIGINT AS days_overdue "
                f"FROM {table} WHERE {' AND '.join(where)}"
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

    # -- users and sessions ------------------------------------------------------------------

    def upsert_user(
        self, username: str, display_name: str, role: str, password_hash: str, demo: bool
    ) -> None:
        self._run("DELETE FROM users WHERE username = ?", [username])
        self._run(
            "INSERT INTO users (username, display_name, role, password_hash, disabled, demo, "
            "created_at, password_changed_at, auth_source) "
            "VALUES (?, ?, ?, ?, FALSE, ?, now(), now(), 'local')",
            [username, display_name, role, password_hash, demo],
        )

    def user(self, username: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT username, display_name, role, password_hash, disabled, demo, disabled_at, "
            "password_changed_at, auth_source FROM users WHERE username = ?",
            [username],
        )
        if row is None:
            return None
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
        return dict(zip(keys, row, strict=True))

    def purge_sessions(self, now: dt.datetime) -> int:
        """Delete sessions that have expired; how many there were."""
        row = self._one("SELECT count(*) FROM sessions WHERE expires_at <= ?", [now])
        self._run("DELETE FROM sessions WHERE expires_at <= ?", [now])
        return int(row[0]) if row else 0

    # -- accounts: disable, role, password, session lifetime (issue 12) ----------------------

    # -- single sign-on accounts (issue 12, docs/security/sso.md) ---------------------------

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
            "VALUES (?, ?, ?, ?, FALSE, FALSE, now(), 'oidc', ?, ?)",
            [username, display_name, role, password_hash, issuer, subject],
        )

    def end_user_sessions(self, username: str) -> int:
        """Delete every session of one user; how many there were."""
        row = self._one("SELECT count(*) FROM sessions WHERE username = ?", [username])
        self._run("DELETE FROM sessions WHERE username = ?", [username])
        return int(row[0]) if row else 0

    def end_demo_sessions(self) -> int:
        """Delete every session of a demo account; how many there were."""
        where = "username IN (SELECT username FROM users WHERE demo)"
        row = self._one(f"SELECT count(*) FROM sessions WHERE {where}")
        self._run(f"DELETE FROM sessions WHERE {where}")
        return int(row[0]) if row else 0

    def set_user_disabled(self, username: str, disabled: bool, at: dt.datetime) -> bool:
        """Disable or enable an account; False if there is no such user."""
        row = self._one(
            "UPDATE users SET disabled = ?, "
            "disabled_at = CASE WHEN ? THEN coalesce(disabled_at, ?) END "
            "WHERE username = ? RETURNING username",
            [disabled, disabled, at, username],
        )
        return row is not None

    def end_sessions_by_source(self, auth_source: str) -> int:
        """End every session of the accounts from one source ('local' or 'oidc')."""
        where = "username IN (SELECT username FROM users WHERE auth_source = ?)"
        row = self._one(f"SELECT count(*) FROM sessions WHERE {where}", [auth_source])
        self._run(f"DELETE FROM sessions WHERE {where}", [auth_source])
        return int(row[0]) if row else 0

    def arrow(self, table: str) -> pa.Table:
        if table not in {"crimes", "crime_history", "outcomes", "stop_searches", "quarantine"}:
            raise StoreError(f"unknown table {table!r}")
        return self._con.sql(f"SELECT * FROM {table}").to_arrow_table()

    # -- registered harm indices (issue 12) ---------------------------------------------------

    def add_harm_index(self, meta: dict[str, object], weights: pl.DataFrame) -> None:
        """Register one index and its weights in one transaction (`added_at` is now); a name
        already registered is a StoreError, nothing written."""
        values = [meta[c] for c in self._HARM_INDEX_COLUMNS if c != "added_at"]
        with self.transaction():
            if self._one("SELECT 1 FROM harm_indices WHERE name = ?", [meta["name"]]):
                raise StoreError(f"a harm index called {meta['name']!r} is already registered")
            self._run(
                f"INSERT INTO harm_indices ({', '.join(self._HARM_INDEX_COLUMNS)}) "
                f"VALUES ({', '.join('?' * (len(self._HARM_INDEX_COLUMNS) - 1))}, now())",
                values,
            )
            self._register("_harm_weights_in", weights)
            try:
                self._run(
                    "INSERT INTO harm_index_weights SELECT ?, weight_kind, weight_key, weight "
                    "FROM _harm_weights_in",
                    [meta["name"]],
                )
            finally:
                self._unregister("_harm_weights_in")

    # -- the audit log (placeharm.audit computes the hashes; this only stores and reads) ---

    def audit_head(self, at_least: int = 0) -> tuple[int, str] | None:
        """The newest entry's sequence number and hash (None for an empty log). `at_least`
        lets DuckDB skip the row groups before a known sequence number."""
        row = self._one(
            "SELECT seq, entry_hash FROM audit_log WHERE seq >= ? ORDER BY seq DESC LIMIT 1",
            [at_least],
        )
        if row is None and at_least > 0:
            return self.audit_head()
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
        """Entries by user, record identifier (a JSON string value in `record_ids`), time
        range and action, newest first; and how many match in all."""
        where = (
            "(?::VARCHAR IS NULL OR username = ?) "
            "AND (?::VARCHAR IS NULL OR contains(record_ids, ?)) "
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
        """Uptake from the log: `totals` (distinct users, page views, downloads, wards
        viewed) and by ISO week `weekly` (users, page views, downloads), `pages` (views and
        users by page kind) and `wards` (views and users by ward). A page view is an HTML
        page served to a signed-in user."""
        span = (
            "outcome = 'ok' AND action IN ('consultation', 'disclosure') "
            "AND (?::TIMESTAMP IS NULL OR logged_at >= ?::TIMESTAMP) "
            "AND (?::TIMESTAMP IS NULL OR logged_at < ?::TIMESTAMP)"
        )
        params: list[object] = [since, since, until, until]
        view = "action = 'consultation' AND format = 'html'"
        ward = "json_extract_string(record_ids, '$.ward[0]')"
        week = "strftime(logged_at, '%G-W%V')"
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
            f"FROM audit_log WHERE {span} GROUP BY ALL ORDER BY week",
            params,
        )
        pages = self._frame(
            f"SELECT {week} AS week, page, count(*) AS views, count(DISTINCT username) AS users "
            f"FROM audit_log WHERE {span} AND {view} GROUP BY ALL ORDER BY week, views DESC, page",
            params,
        )
        wards = self._frame(
            f"SELECT {week} AS week, {ward} AS ward, count(*) AS views, "
            f"count(DISTINCT username) AS users FROM audit_log WHERE {span} AND {view} "
            "AND page = 'ward' GROUP BY ALL ORDER BY week, views DESC, ward",
            params,
        )
        return {"totals": totals, "weekly": weekly, "pages": pages, "wards": wards}

    def set_justification(
        self, token_hash: str, purpose: str, reason_code: str, reason_text: str, now: dt.datetime
    ) -> None:
        """A session's stated justification for a purpose (replacing an earlier one); the
        justifications of ended sessions go at the same time."""
        self._run(
            "DELETE FROM audit_justifications WHERE token_hash NOT IN "
            "(SELECT token_hash FROM sessions) OR (token_hash = ? AND purpose = ?)",
            [token_hash, purpose],
        )
        self._run(
            "INSERT INTO audit_justifications VALUES (?, ?, ?, ?, ?)",
            [token_hash, purpose, reason_code, reason_text, now],
        )

    # -- outcome rates (issue 15) ------------------------------------------------------------

    def outcome_counts(
        self, set_name: str, first: dt.date, last: dt.date, area_code: str | None = None
    ) -> pl.DataFrame:
        """police.uk crimes with a Crime ID (anti-social behaviour has none, so no outcome)
        per (area_code, month, outcome) for crimes recorded first..last (in area `area_code`
        of the set if given): the latest outcome from the outcomes files held, else the
        street file's last outcome category, null for neither. area_code is null outside
        the set (services/outcomes.py groups them)."""
        col = _area_col(set_name)
        return self._frame(
            f"SELECT {col} AS area_code, month, "
            "coalesce(latest_outcome, nullif(last_outcome_category, '')) AS outcome, "
            "count(*)::BIGINT AS crimes FROM crimes "
            "WHERE month BETWEEN ? AND ? AND coalesce(crime_id, '') <> '' "
            f"AND (?::VARCHAR IS NULL OR {col} = ?) GROUP BY ALL",
            [first, last, area_code, area_code],
        )

    def outcomes_of_crime_ids(self, crime_ids: list[str]) -> pl.DataFrame:
        """(crime_id, outcome) of the police.uk crimes with these Crime IDs, as
        `outcome_counts` reads them (latest outcome held, else the street file's); a Crime ID
        held more than once (police.uk repeats some) takes its latest month's, the same on
        every engine."""
        if not crime_ids:
            return pl.DataFrame(schema={"crime_id": pl.String, "outcome": pl.String})
        return self._frame(
            "SELECT crime_id, first(coalesce(latest_outcome, nullif(last_outcome_category, '')) "
            "ORDER BY month DESC, coalesce(latest_outcome, nullif(last_outcome_category, '')) "
            "DESC NULLS LAST) AS outcome FROM crimes "
            "WHERE crime_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY crime_id",
            [crime_ids],
        )


# -- store lifecycle helpers (issue 13): read-only detection, failures, backups, restore ------

# columns of the first release's migration 1 that its edited version replaced
_FIRST_RELEASE_ONLY = {"crime_key", "outcome_key", "outcome_hash", "source_file"}
# DuckDB's words for a damaged file, and what to tell the user instead of them
_DAMAGE = (
    ("replaying wal", "its write-ahead log (the .wal file beside it) is damaged"),
    ("computed checksum", "a block's checksum does not match its contents"),
    ("corrupt database file", "the file is damaged"),
    ("could not read enough bytes", "the file is shorter than its contents (truncated)"),
    ("not a valid duckdb database file", "it is not a DuckDB store"),
    ("invalid block", "the file is damaged"),
    ("invalid database header", "the file's header is damaged"),
    ("failed to read database header", "the file's header is damaged"),
)
_DISK_FULL = ("no space left on device", "disk full", "disk quota exceeded", "file too large")


def store_is_read_only(path: str) -> bool:
    """Whether the store at `path` must be opened read-only: a file nobody may write (mode
    0444, honoured for root too), or one this process cannot write, or whose folder it cannot
    write (DuckDB writes its log beside the file). A missing file is not read-only."""
    if path == ":memory:" or not os.path.exists(path):
        return False
    mode = os.stat(path).st_mode
    folder = os.path.dirname(os.path.abspath(path))
    return (
        not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        or not os.access(path, os.W_OK)
        or not os.access(folder, os.W_OK)
    )


def store_error(exc: BaseException, path: str, during: bool = False) -> StoreError:
    """The StoreError to raise for a DuckDB (or operating-system) failure on the store at
    `path`: a damaged file points to `placeharm restore`, a full disk says nothing was
    written, another process's lock says which process. Anything else is a plain StoreError
    when opening, and is raised as it is while querying (a bug, not the store's state)."""
    text = str(exc)
    lower = text.lower()
    name = os.path.basename(path)
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)) or any(
        w in lower for w in _DISK_FULL
    ):
        return StoreUnavailable(
            f"the disk holding the store {name} is full (no space left on the device). "
            "Nothing was written: what was being saved was rolled back and the store holds "
            "what it held before. Free some space (or move the store, its backups or "
            "temporary files to a larger disk) and try again."
        )
    if "conflicting lock" in lower:
        holder = ""
        if "(pid " in lower:
            holder = " (process " + text[lower.index("(pid ") + 5 :].split(")")[0] + ")"
        return StoreUnavailable(
            f"another process{holder} has the store {name} open for writing (DuckDB allows "
            "one writing process per file): usually the dashboard (`placeharm serve`). Wait "
            "for it, or stop it first; a served store is backed up from the dashboard's "
            "admin page (docs/ingest.md, The store)."
        )
    if "database has been invalidated" in lower:
        return StoreUnavailable(
            f"an earlier failure (a full disk, or a damaged file; see the log) stopped the store "
            f"{name} in this process. Restart placeharm; if the store then cannot be opened, "
            "restore it from a backup with `placeharm restore BACKUP_FILE`."
        )
    for words, reason in _DAMAGE:
        if words in lower:
            return StoreUnavailable(
                f"the store {name} is damaged: {reason}. Restore it from a backup with "
                "`placeharm restore BACKUP_FILE` (the damaged file is kept aside); "
                "docs/ingest.md (The store) says how backups are made."
            )
    if "read-only mode" in lower or "read only mode" in lower:
        return StoreUnavailable(
            f"the store {name} is open read-only (the file or its folder cannot be written, "
            "or the read_only setting is on), so nothing can be imported or changed. Queries "
            "work; make the file writable to import."
        )
    if isinstance(exc, OSError):
        return StoreUnavailable(f"the store {name} cannot be read or written: {exc.strerror}")
    if during:
        raise exc
    if "database does not exist" in lower:
        return StoreError(
            f"cannot open the store {path}: it does not exist, and it cannot be created "
            "read-only (the file or its folder cannot be written). Check the path."
        )
    return StoreError(
        f"cannot open the store {path}: {text}. If another placeharm process is writing to "
        "it, wait for it to finish; otherwise check the path."
    )


def _row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows in every table of the connection's own database."""
    tables = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_catalog = current_database() AND table_schema = 'main' ORDER BY table_name"
    ).fetchall()
    counts = {}
    for (table,) in tables:
        quoted = '"' + str(table).replace('"', '""') + '"'
        row = con.execute(f"SELECT count(*) FROM {quoted}").fetchone()
        counts[str(table)] = int(row[0]) if row else 0
    return counts


def verify_store_file(path: Path) -> dict[str, Any]:
    """Open a store file read-only, read every block of every table (so a damaged block
    shows), and return its schema version and rows per table; a StoreError if it is not a
    placeharm store this placeharm can open."""
    try:
        con = duckdb.connect(str(path), read_only=True)
    except (duckdb.Error, OSError) as exc:
        raise store_error(exc, str(path)) from exc
    try:
        counts = _row_counts(con)
        if "schema_migrations" not in counts:
            raise StoreError(f"{path.name} is a DuckDB file but not a placeharm store")
        row = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        version = int(row[0]) if row else 0
        if version > LATEST_VERSION:
            raise StoreError(
                f"{path.name} has schema version {version}, newer than this placeharm "
                f"understands ({LATEST_VERSION}); upgrade placeharm to use it"
            )
        for table in counts:  # hash every row: each block is read and its checksum checked
            quoted = '"' + table.replace('"', '""') + '"'
            con.execute(f"SELECT max(hash(t)) FROM {quoted} AS t").fetchall()
    except duckdb.Error as exc:
        raise store_error(exc, str(path)) from exc
    finally:
        con.close()
    return {"schema_version": version, "rows": counts}


def restore_store(source: Path, target: Path) -> Path | None:
    """Put the backup `source` in place of the store `target`: the backup is checked first
    (it opens, every block reads, its schema is known); the current file, if any, is kept
    aside as `<target>.before-restore-<UTC time>` (returned), even if it is damaged. Refused
    while another process (the dashboard) holds the store. The restored store is upgraded
    when it is next opened."""
    if not source.is_file():
        raise StoreError(f"the backup {source} does not exist")
    verify_store_file(source)
    if target.exists():
        try:  # a lock held by another process refuses; a damaged file is what we replace
            duckdb.connect(str(target)).close()
        except (duckdb.Error, OSError) as exc:
            if "conflicting lock" in str(exc).lower():
                raise store_error(exc, str(target)) from exc
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    partial = target.with_name(f".{target.name}.restoring-{os.getpid()}")
    kept: Path | None = None
    try:
        shutil.copyfile(source, partial)
        with open(partial, "rb") as handle:
            os.fsync(handle.fileno())
        if target.exists():
            kept = target.with_name(f"{target.name}.before-restore-{stamp}")
            os.replace(target, kept)
            wal = Path(f"{target}.wal")
            if wal.exists():
                os.replace(wal, Path(f"{kept}.wal"))
        os.replace(partial, target)
    except OSError as exc:
        if kept is not None and not target.exists():
            os.replace(kept, target)  # put the current file back
        raise store_error(exc, str(target), during=True) from exc
    finally:
        partial.unlink(missing_ok=True)
    return kept


# the record kinds with a MoPI review date: their table and key
_MOPI = {
    "nominals": ("soc_nominals", "nominal_id"),
    "intelligence": ("soc_intelligence", "intel_id"),
}


def _scoped(
    table: str, scope: Scope, where: list[str], params: list[object], alias: str = ""
) -> None:
    """Add `scope`'s conditions on `table` (read as `alias`) to `where` and `params`: a kept
    column must hold one of its values (NULL never does), a dropped value never counts."""
    prefix = f"{alias}." if alias else ""
    for column, values, keep in scope.rules(table):
        cell = f"{prefix}{_safe_col(column)}::VARCHAR"
        if keep:
            where.append(f"coalesce(list_contains(?::VARCHAR[], {cell}), FALSE)")
        else:
            where.append(f"({cell} IS NULL OR NOT list_contains(?::VARCHAR[], {cell}))")
        params.append(list(values))


def _records_where(
    table: str,
    first: dt.date | None,
    last: dt.date | None,
    date_col: str,
    area: tuple[str, str] | None,
    search: tuple[str, str] | None,
    equals: list[tuple[str, str]] | None,
    exclude: tuple[str, list[str]] | None,
    include: tuple[str, list[str]] | None,
    scope: Scope,
) -> tuple[str, list[object]]:
    """The WHERE clause and parameters of a records query (`records_page`, `records_stream`):
    one condition set, so a page's total and its export count the same rows."""
    if table not in RECORD_TABLES and table not in SOC_TABLES:
        raise StoreError(f"unknown record table {table!r}")
    where: list[str] = ["TRUE"]
    params: list[object] = []
    if first is not None and last is not None:
        where.append(f"{_safe_col(date_col)} BETWEEN ? AND ?")
        params += [first, last]
    if area is not None:
        where.append(f"{_area_col(area[0])} = ?")
        params.append(area[1])
    if search is not None:
        where.append(f"CAST({_safe_col(search[0])} AS VARCHAR) ILIKE ?")
        params.append(f"%{search[1]}%")
    for column, value in equals or []:
        where.append(f"{_safe_col(column)} = ?")
        params.append(value)
    if exclude is not None and exclude[1]:
        where.append(f"{_safe_col(exclude[0])} <> ALL(?::VARCHAR[])")
        params.append(list(exclude[1]))
    if include is not None:
        where.append(f"{_safe_col(include[0])} = ANY(?::VARCHAR[])")
        params.append(list(include[1]))
    _scoped(table, scope, where, params)
    return " AND ".join(where), params
