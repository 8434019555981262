"""What both stores share: the methods whose SQL and rules are the same on DuckDB
(`store.duckdb.DuckDBStore`) and PostgreSQL (`store.postgres.PostgresStore`), written once.

Both stores run statements written with `?` placeholders through the same small helpers
(`_run`, `_one`, `_frame`, `transaction`); each store implements those for its engine, and
`SqlStore` holds every method that reads or writes through them alone. A method whose SQL
differs between the engines (a dialect's function, a temporary table against a registered
frame) stays in its store. Values always travel as parameters; the only identifiers built
into SQL text are checked against allow-lists (`_table`, `_safe_col`) or `AREA_SET_NAME_RE`
(`_area_col`).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Self

import polars as pl

from placeharm.errors import StoreError
from placeharm.model import AreaSetInfo, check_area_set_name
from placeharm.store.base import AUDIT_COLUMNS, CELLS_CHECK

# Tables of located records: each gets an `area_<set>` column per area set.
SOC_LOCATED_TABLES = (
    "soc_addresses",
    "soc_intelligence",
    "soc_incidents",
    "soc_force_crimes",
    "soc_disruptions",
    "soc_partner_events",
)
SOC_TABLES = (
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
)
RECORD_TABLES = ("crimes", "stop_searches", *SOC_LOCATED_TABLES)
_HASHED = {
    ("crimes", "crime_hash"),
    ("outcomes", "crime_hash"),
    ("stop_searches", "search_hash"),
    ("crime_history", "crime_hash"),
    ("outcome_history", "crime_hash"),
}


def _area_col(set_name: str) -> str:
    """Column holding a set's area code; the name is validated, so it is safe to quote."""
    return f'"area_{check_area_set_name(set_name)}"'


def _table(name: str, also: tuple[str, ...] = ()) -> str:
    """A record table's name, checked against the allow-list (safe to put in SQL)."""
    if name not in RECORD_TABLES and name not in also:
        raise StoreError(f"unknown record table {name!r}")
    return name


def _safe_col(name: str) -> str:
    if not name.replace("_", "").isalnum() or not name[0].isalpha():
        raise StoreError(f"unsafe column name {name!r}")
    return f'"{name}"'


class SqlStore:
    """The engine-neutral part of a store: every method here runs the same SQL on both
    engines through the helpers each store implements (declared below for the type checker).
    """

    if TYPE_CHECKING:
        _local: threading.local
        _LATEST_OUTCOME: ClassVar[str]

        def _run(self, sql: str, params: list[object] | None = None) -> list[tuple[Any, ...]]: ...

        def _frame(self, sql: str, params: list[object] | None = None) -> pl.DataFrame: ...

        def transaction(self) -> AbstractContextManager[None]: ...

        def close(self) -> None: ...

        # a frame a statement joins by name (DuckDB: a registered frame; PostgreSQL: a
        # temporary table), and its removal
        def _temp(self, name: str, frame: pl.DataFrame) -> None: ...

        def _untemp(self, name: str) -> None: ...

        def refresh_latest_outcomes(self, hashes: pl.Series | None = None) -> int: ...

        def refresh_in_area(self, table: str) -> None: ...

        def _maintain_cells(self) -> None: ...

        def _cells_differing(self) -> int: ...

        def rebuild_crime_cells(self) -> int: ...

    # tables of versions besides the record tables (each store's delete_history_rows and
    # insert_history_rows accept them)
    _VERSIONED = ("crime_history", "outcome_history", "outcomes")

    # -- transactions and rows: the engine-neutral part of the helpers ----------------------

    @property
    def _in_tx(self) -> bool:
        return bool(getattr(self._local, "in_tx", False))

    @_in_tx.setter
    def _in_tx(self, value: bool) -> None:
        self._local.in_tx = value

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _one(self, sql: str, params: list[object] | None = None) -> tuple[Any, ...] | None:
        """First row of a query; fetches all so the connection is free (DuckDB 2.x)."""
        rows = self._run(sql, params)
        return rows[0] if rows else None

    def in_transaction(self) -> bool:
        """Whether this thread is inside `transaction()`."""
        return self._in_tx

    def after_transaction(self, hook: Callable[[bool], None]) -> None:
        """Call `hook(committed)` when this thread's current transaction ends."""
        if not self._in_tx:
            raise StoreError("after_transaction needs an open transaction")
        hooks: list[Callable[[bool], None]] = getattr(self._local, "hooks", [])
        hooks.append(hook)
        self._local.hooks = hooks

    # -- imports, areas, coverage, derived columns, area grids, held hashes ------------------

    def imports(self, limit: int = 50) -> pl.DataFrame:
        return self._frame("SELECT * FROM imports ORDER BY import_id DESC LIMIT ?", [limit])

    def area_sets(self) -> list[AreaSetInfo]:
        rows = self._run(
            "SELECT name, source_file, code_field, name_field, source_crs, feature_count, "
            "repaired_count, rejected_count, imported_at, assigned FROM area_sets ORDER BY name"
        )
        return [AreaSetInfo(*row) for row in rows]

    def area_polygons(self, set_name: str, code: str | None = None) -> pl.DataFrame:
        """area_code, area_name and geometry_wkb of every area in a set (or the one with
        `code`), ordered by code."""
        if code is not None:
            return self._frame(
                "SELECT area_code, area_name, geometry_wkb FROM areas "
                "WHERE set_name = ? AND area_code = ?",
                [set_name, code],
            )
        return self._frame(
            "SELECT area_code, area_name, geometry_wkb FROM areas WHERE set_name = ? "
            "ORDER BY area_code",
            [set_name],
        )

    def mark_assigned(self, set_name: str) -> None:
        self._run("UPDATE area_sets SET assigned = true WHERE name = ?", [set_name])

    def lookups_from(self, from_set: str, code: str) -> list[tuple[str, str, str | None]]:
        rows = self._run(
            "SELECT to_set, to_code, to_name FROM area_lookups "
            "WHERE from_set = ? AND from_code = ? ORDER BY to_set",
            [from_set, code],
        )
        return [(r[0], r[1], r[2]) for r in rows]

    def area_name(self, set_name: str, code: str) -> str | None:
        row = self._one(
            "SELECT area_name FROM areas WHERE set_name = ? AND area_code = ?", [set_name, code]
        )
        return None if row is None else row[0]

    def area_list(self, set_name: str) -> pl.DataFrame:
        """area_code and area_name of every area in a set (no geometry), ordered by code."""
        return self._frame(
            "SELECT area_code, area_name FROM areas WHERE set_name = ? ORDER BY area_code",
            [set_name],
        )

    def populations(self, set_name: str) -> pl.DataFrame:
        """Every population held for a set: area_code, year, population, method, source_file."""
        return self._frame(
            "SELECT area_code, year, population, method, source_file FROM area_populations "
            "WHERE set_name = ? ORDER BY year, area_code",
            [set_name],
        )

    def unassigned_points(self, table: str) -> pl.DataFrame:
        """rowid, longitude, latitude (and the file's LSOA code) of every located record."""
        tbl = _table(table)
        lsoa = "lsoa_code_file" if tbl == "crimes" else "NULL::VARCHAR AS lsoa_code_file"
        return self._frame(
            f"SELECT rowid AS _rid, longitude, latitude, {lsoa} FROM {tbl} WHERE located"
        )

    def _stale_in_area(self, table: str) -> int:
        tbl = _table(table)
        sets = [s.name for s in self.area_sets()]
        any_code = " OR ".join(f"{_area_col(s)} IS NOT NULL" for s in sets) or "FALSE"
        row = self._one(
            f"SELECT count(*) FROM {tbl} WHERE located AND in_area IS DISTINCT FROM ({any_code})"
        )
        return int(row[0]) if row else 0

    def _latest_sql(self, scoped: bool) -> str:
        if not scoped:
            return self._LATEST_OUTCOME.format(where="", crime_where="")
        return self._LATEST_OUTCOME.format(
            where="WHERE o.crime_hash IN (SELECT h FROM _touched_in)",
            crime_where="WHERE c.crime_hash IN (SELECT h FROM _touched_in)",
        )

    def repair_derived(self) -> dict[str, int]:
        """Recompute every derived column (latest outcomes, in_area) and the harm cube's
        cells; rows (cells) wrong before each fix."""
        fixed = {"crimes with a stale latest outcome": self.refresh_latest_outcomes()}
        fixed[CELLS_CHECK] = self._cells_differing()
        self.rebuild_crime_cells()
        if self.area_sets():
            for table in ("crimes", "stop_searches"):
                before = self._stale_in_area(table)
                self.refresh_in_area(table)
                fixed[f"{table} with a stale in_area flag"] = before
        return fixed

    def coverage(self) -> pl.DataFrame:
        return self._frame(
            "SELECT source_kind, force, month, rows, source_file FROM coverage "
            "ORDER BY source_kind, force, month"
        )

    def _touch_cells(self, months: pl.Series | None = None, set_name: str | None = None) -> None:
        """Note cells to recount at this transaction's commit: every set's cells in `months`,
        or all of one set's cells."""
        pending: tuple[set[dt.date], set[str]] | None = getattr(self._local, "cells_pending", None)
        if pending is None:
            pending = self._local.cells_pending = (set(), set())
        if months is not None:
            pending[0].update(m for m in months.unique().to_list() if m is not None)
        if set_name is not None:
            pending[1].add(set_name)
        if not self._in_tx:  # an autocommitted write: its cells at once, in their own commit
            with self.transaction():
                self._maintain_cells()

    def located_within(
        self,
        table: str,
        columns: list[str],
        box: tuple[float, float, float, float],
        during: tuple[str, str, dt.date | None, dt.date | None] | None = None,
    ) -> pl.DataFrame:
        """Located rows of a record table whose point lies in `box` (min longitude, min
        latitude, max longitude, max latitude): the cheap first cut of a radius search, whose
        exact distances are computed above the store. `during` (start column, end column,
        first, last) keeps rows whose [start, end] overlaps [first, last], a null start or
        end being open and a null first or last unbounded (start = end for a dated record)."""
        cols = ", ".join(_safe_col(c) for c in columns)
        west, south, east, north = box
        where = ["located", "latitude BETWEEN ? AND ?", "longitude BETWEEN ? AND ?"]
        params: list[object] = [south, north, west, east]
        if during is not None:
            start, end, first, last = during
            if last is not None:
                where.append(f"({_safe_col(start)} IS NULL OR {_safe_col(start)} <= ?)")
                params.append(last)
            if first is not None:
                where.append(f"({_safe_col(end)} IS NULL OR {_safe_col(end)} >= ?)")
                params.append(first)
        return self._frame(
            f"SELECT {cols} FROM {_table(table)} WHERE {' AND '.join(where)}", params
        )

    def area_grid(self, set_name: str) -> tuple[str, bytes] | None:
        """The grid kept for a set (its digest and bytes), or None."""
        row = self._one("SELECT digest, grid FROM area_grids WHERE set_name = ?", [set_name])
        return (str(row[0]), bytes(row[1])) if row else None

    def save_area_grid(self, set_name: str, digest: str, grid: bytes) -> None:
        """Keep a set's grid, replacing the one kept before."""
        with self.transaction():
            self._run("DELETE FROM area_grids WHERE set_name = ?", [set_name])
            self._run("INSERT INTO area_grids VALUES (?, ?, ?)", [set_name, digest, grid])

    def held_hashes(self, table: str, hash_col: str, hashes: pl.Series) -> pl.Series:
        """The distinct join hashes among `hashes` that rows of `table` hold (a scan of its
        hash column only)."""
        if (table, hash_col) not in _HASHED:
            raise StoreError(f"unknown table and hash column {table!r}, {hash_col!r}")
        self._temp("_hashes_in", pl.DataFrame({"h": hashes.unique()}))
        try:
            found = self._frame(
                f"SELECT DISTINCT i.h AS {hash_col} FROM _hashes_in i "
                f"WHERE i.h IN (SELECT t.{hash_col} FROM {table} t)"
            )
        finally:
            self._untemp("_hashes_in")
        return found[hash_col] if found.height else hashes.clear()

    # -- users and sessions ------------------------------------------------------------------

    def users(self) -> pl.DataFrame:
        return self._frame(
            "SELECT username, display_name, role, disabled, demo, auth_source, created_at, "
            "disabled_at, password_changed_at, (SELECT count(*) FROM sessions s "
            "WHERE s.username = u.username) AS sessions FROM users u ORDER BY username"
        )

    def add_session(
        self,
        token_hash: str,
        username: str,
        expires_at: dt.datetime,
        created_at: dt.datetime | None = None,
    ) -> None:
        created_at = created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self._run(
            "INSERT INTO sessions (token_hash, username, created_at, expires_at, last_seen_at) "
            "VALUES (?, ?, ?, ?, ?)",
            [token_hash, username, created_at, expires_at, created_at],
        )

    def session_user(self, token_hash: str, now: dt.datetime) -> str | None:
        row = self._one(
            "SELECT username FROM sessions WHERE token_hash = ? AND expires_at > ?",
            [token_hash, now],
        )
        return None if row is None else str(row[0])

    def end_session(self, token_hash: str) -> None:
        self._run("DELETE FROM sessions WHERE token_hash = ?", [token_hash])

    def session(self, token_hash: str) -> dict[str, Any] | None:
        """A stored session: username, created_at, expires_at, last_seen_at (or None)."""
        row = self._one(
            "SELECT username, created_at, expires_at, coalesce(last_seen_at, created_at) "
            "FROM sessions WHERE token_hash = ?",
            [token_hash],
        )
        if row is None:
            return None
        keys = ("username", "created_at", "expires_at", "last_seen_at")
        return dict(zip(keys, row, strict=True))

    def touch_session(self, token_hash: str, seen_at: dt.datetime) -> None:
        """Record a request on the session (never moves its last-seen time back)."""
        self._run(
            "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? "
            "AND coalesce(last_seen_at, created_at) < ?",
            [seen_at, token_hash, seen_at],
        )

    def user_by_subject(self, issuer: str, subject: str) -> dict[str, Any] | None:
        """The account an identity provider's (issuer, sub) signed in as before, if any."""
        row = self._one(
            "SELECT username, display_name, role, disabled FROM users "
            "WHERE auth_source = 'oidc' AND external_issuer = ? AND external_subject = ?",
            [issuer, subject],
        )
        if row is None:
            return None
        return dict(zip(("username", "display_name", "role", "disabled"), row, strict=True))

    def update_sso_user(self, username: str, display_name: str, role: str) -> None:
        self._run(
            "UPDATE users SET display_name = ?, role = ? "
            "WHERE username = ? AND auth_source = 'oidc'",
            [display_name, role, username],
        )

    def set_user_role(self, username: str, role: str) -> bool:
        row = self._one(
            "UPDATE users SET role = ? WHERE username = ? RETURNING username", [role, username]
        )
        return row is not None

    def set_user_password(self, username: str, password_hash: str, at: dt.datetime) -> bool:
        row = self._one(
            "UPDATE users SET password_hash = ?, password_changed_at = ? WHERE username = ? "
            "RETURNING username",
            [password_hash, at, username],
        )
        return row is not None

    # -- SOC links, imports and tables -------------------------------------------------------

    def soc_crime_links(self, first: dt.date, last: dt.date) -> pl.DataFrame:
        """crime_ref, role and group_type for every force crime of [first, last] linked to a
        member of a group."""
        return self._frame(
            """SELECT DISTINCT nc.crime_ref, nc.role, g.group_type
               FROM soc_nominal_crimes nc
               JOIN soc_force_crimes fc ON fc.crime_ref = nc.crime_ref
               JOIN soc_memberships m ON m.nominal_id = nc.nominal_id
               JOIN soc_groups g ON g.group_id = m.group_id
               WHERE fc.recorded_date BETWEEN ? AND ?""",
            [first, last],
        )

    def restricted_only_nominals(self) -> list[str]:
        """Nominals whose only SOC relevance is a restricted (CCE/CSE) flag: not a group
        member and no other SOC flag. Uncleared roles must not learn they exist."""
        rows = self._run(
            """SELECT nominal_id FROM soc_nominals n
               WHERE (cce_perpetrator OR cce_victim OR cse_perpetrator OR cse_victim)
                 AND NOT (ocg_member OR priority_individual OR pcg_member OR ucg_member)
                 AND NOT EXISTS (SELECT 1 FROM soc_memberships m
                                 WHERE m.nominal_id = n.nominal_id)"""
        )
        return [str(r[0]) for r in rows]

    def has_real_soc_records(self) -> bool:
        """Whether any SOC table holds a row not flagged synthetic (a force's own data): demo
        accounts are then refused. Stops at the first such row in each table."""
        tests = " OR ".join(
            f"EXISTS (SELECT 1 FROM {table} WHERE NOT synthetic)" for table in SOC_TABLES
        )
        row = self._one(f"SELECT {tests}")
        return bool(row and row[0])

    def latest_import(self) -> tuple[int, dt.datetime | None]:
        """The newest import id and when it finished: what 'data as of' shows."""
        row = self._one(
            "SELECT max(import_id), max(coalesce(finished_at, started_at)) FROM imports"
        )
        if row is None or row[0] is None:
            return 0, None
        return int(row[0]), row[1]

    def table_counts(self) -> dict[str, int]:
        out = {}
        for tbl in (
            "crimes",
            "crime_history",
            "outcomes",
            "stop_searches",
            "quarantine",
            "imports",
        ):
            row = self._one(f"SELECT count(*) FROM {tbl}")
            out[tbl] = int(row[0]) if row else 0
        return out

    def crime_frame(self, columns: list[str] | None = None) -> pl.DataFrame:
        """Crimes as a polars frame (for notebooks and tests)."""
        cols = ", ".join(_safe_col(c) for c in columns) if columns else "*"
        return self._frame(f"SELECT {cols} FROM crimes")

    # -- registered harm indices (issue 12) --------------------------------------------------

    _HARM_INDEX_COLUMNS = (
        "name",
        "title",
        "edition",
        "description",
        "source",
        "unit",
        "secondary",
        "type_scope",
        "source_file",
        "file_sha256",
        "added_by",
        "added_at",
    )

    def harm_indices(self) -> pl.DataFrame:
        """The registered custom harm indices, one row each (weights: `harm_index_weights`)."""
        return self._frame(
            f"SELECT {', '.join(self._HARM_INDEX_COLUMNS)} FROM harm_indices ORDER BY name"
        )

    def harm_index_weights(self) -> pl.DataFrame:
        """Every registered index's weights: index_name, weight_kind, weight_key, weight."""
        return self._frame(
            "SELECT index_name, weight_kind, weight_key, weight FROM harm_index_weights "
            "ORDER BY index_name, weight_kind, weight_key"
        )

    def remove_harm_index(self, name: str) -> bool:
        """Unregister an index and its weights; whether it was registered."""
        with self.transaction():
            found = self._one("SELECT 1 FROM harm_indices WHERE name = ?", [name]) is not None
            self._run("DELETE FROM harm_index_weights WHERE index_name = ?", [name])
            self._run("DELETE FROM harm_indices WHERE name = ?", [name])
        return found

    # -- the audit log and justifications ----------------------------------------------------

    def audit_append(self, entry: dict[str, Any]) -> None:
        """Insert one entry (the only write the audit log has: no update, no delete)."""
        self._run(
            f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})",
            [entry[c] for c in AUDIT_COLUMNS],
        )

    def audit_entries(
        self,
        after_seq: int = 0,
        limit: int = 10_000,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Entries after `after_seq` in sequence order (optionally logged in [since, until))."""
        rows = self._run(
            f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log WHERE seq > ? "
            "AND (?::TIMESTAMP IS NULL OR logged_at >= ?::TIMESTAMP) "
            "AND (?::TIMESTAMP IS NULL OR logged_at < ?::TIMESTAMP) ORDER BY seq LIMIT ?",
            [after_seq, since, since, until, until, limit],
        )
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in rows]

    def audit_seq_of_hash(self, entry_hash: str) -> int | None:
        """The sequence number of the entry with this hash, if any."""
        row = self._one("SELECT min(seq) FROM audit_log WHERE entry_hash = ?", [entry_hash])
        return None if row is None or row[0] is None else int(row[0])

    def justification(self, token_hash: str, purpose: str) -> tuple[str, str] | None:
        """(reason code, text) stated in this session for the purpose, if any, while the
        session exists (whether it is still live is the caller's session check, under the
        app's idle and absolute limits and clock)."""
        row = self._one(
            "SELECT j.reason_code, j.reason_text FROM audit_justifications j "
            "JOIN sessions s USING (token_hash) WHERE j.token_hash = ? AND j.purpose = ?",
            [token_hash, purpose],
        )
        return None if row is None else (str(row[0]), str(row[1]))

    def end_justifications(self, token_hash: str) -> None:
        self._run("DELETE FROM audit_justifications WHERE token_hash = ?", [token_hash])
