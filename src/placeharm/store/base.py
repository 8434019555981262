"""The store interface services depend on; DuckDB implements it, PostgreSQL will follow.

Frames cross this boundary as polars DataFrames with the column names of the schema in
`migrations.py`. An implementation owns all SQL, its transactions and its migrations.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow

# The invariant `placeharm check` reports the harm cube under: cells that differ from a
# recount of the records (`--repair` rebuilds them; issue 14).
CELLS_CHECK = "harm cube cells differing from a recount of crimes"


@dataclass(frozen=True, slots=True)
class Scope:
    """Which rows of which tables a reader may see and count, applied by the store inside
    every query that reads them (record lists, totals, measures, maps, exports alike), so
    what a role cannot list it cannot count. Built by `services.policy.scope`; the empty
    scope (the command line, an operator) reads everything.

    keep: (table, column, allowed values): a row of `table` counts only if `column` holds
    one of the values (NULL never does). drop: (table, column, values): rows whose `column`
    holds one of the values never count. masked: (table, column) boolean columns the reader
    may not see: a condition on them is false (a measure cannot count a flag it hides).
    """

    keep: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    drop: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    masked: tuple[tuple[str, str], ...] = ()

    def rules(self, table: str) -> list[tuple[str, tuple[str, ...], bool]]:
        """(column, values, keep) for one table: keep=True means only those values count."""
        out = [(c, v, True) for t, c, v in self.keep if t == table]
        return out + [(c, v, False) for t, c, v in self.drop if t == table and v]

    def hides(self, table: str, column: str) -> bool:
        return (table, column) in self.masked


EVERYTHING = Scope()


# The audit log's columns in storage order (migration 5; placeharm.audit hashes them)
AUDIT_COLUMNS = (
    "seq",
    "logged_at",
    "username",
    "role",
    "client_address",
    "action",
    "page",
    "route",
    "format",
    "record_ids",
    "query",
    "row_count",
    "marking",
    "reason_code",
    "reason_text",
    "outcome",
    "prev_hash",
    "entry_hash",
    "hmac",
)


class Store(Protocol):
    """Everything `services` asks of a store."""

    engine: str

    def close(self) -> None: ...
    def schema_version(self) -> int: ...
    def migrate(self) -> list[int]: ...
    def transaction(self) -> AbstractContextManager[None]: ...
    # one consistent read for a page: every query in the block sees one committed state
    def snapshot(self) -> AbstractContextManager[None]: ...

    # imports and quarantine
    def next_import_ids(self, n: int) -> list[int]: ...
    def log_imports(
        self, entries: list[tuple[ImportResult, dt.datetime, str]], imported_by: str | None = None
    ) -> None: ...
    def add_quarantine(self, import_id: int, rows: list[QuarantineRow]) -> None: ...
    def imports(self, limit: int = 50) -> pl.DataFrame: ...
    def quarantine(
        self, import_id: int | None = None, source_file: str | None = None, limit: int = 1000
    ) -> pl.DataFrame: ...

    # areas
    def area_sets(self) -> list[AreaSetInfo]: ...
    def area_polygons(self, set_name: str, code: str | None = None) -> pl.DataFrame: ...
    def replace_area_set(self, info: AreaSetInfo, areas: pl.DataFrame) -> None: ...
    def mark_assigned(self, set_name: str) -> None: ...
    def replace_lookup(self, frame: pl.DataFrame) -> int: ...
    def lookups_from(self, from_set: str, code: str) -> list[tuple[str, str, str | None]]: ...
    def area_name(self, set_name: str, code: str) -> str | None: ...

    # records
    def matching_rows(self, table: str, hash_col: str, hashes: pl.Series) -> pl.DataFrame: ...
    def insert_rows(self, table: str, frame: pl.DataFrame) -> None: ...
    def update_crimes(self, frame: pl.DataFrame, sources: dict[int, str]) -> None: ...
    def refresh_latest_outcomes(self, hashes: pl.Series | None = None) -> int: ...
    def unassigned_points(self, table: str) -> pl.DataFrame: ...
    def set_area_codes(self, table: str, set_name: str, frame: pl.DataFrame) -> None: ...

    # coverage and counts
    def record_coverage(self, frame: pl.DataFrame) -> None: ...
    def coverage(self) -> pl.DataFrame: ...
    def counts_by_area_month(
        self, set_name: str, first: dt.date, last: dt.date, crime_types: list[str] | None
    ) -> pl.DataFrame: ...

    # harm
    def crime_cube(
        self,
        set_name: str,
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None,
        offence_codes: list[str] | None,
        by_month: bool,
    ) -> pl.DataFrame: ...
    def crime_cells(self, set_name: str) -> pl.DataFrame: ...
    @property
    def generation(self) -> int: ...
    def area_list(self, set_name: str) -> pl.DataFrame: ...
    def replace_populations(self, set_name: str, year: int, frame: pl.DataFrame) -> int: ...
    def populations(self, set_name: str) -> pl.DataFrame: ...

    # SOC overlay
    def soc_frame(
        self,
        table: str,
        set_name: str | None = None,
        between: tuple[str, dt.date, dt.date] | None = None,
        columns: list[str] | None = None,
        area_code: str | None = None,
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame: ...
    def soc_summary(self) -> tuple[dt.date | None, dt.date | None, bool]: ...
    def soc_crime_links(self, first: dt.date, last: dt.date) -> pl.DataFrame: ...
    def soc_scores(
        self,
        set_name: str,
        periods: dict[str, tuple[dt.date, dt.date]],
        dated: dict[str, list[tuple[str, dict[str, Any], float | None]]],
        residents: list[tuple[str, list[str], float]],
        weights: tuple[pl.DataFrame, pl.DataFrame],
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame: ...
    def soc_cells(self, set_name: str) -> dict[str, pl.DataFrame]: ...
    def soc_keyed_rows(self, table: str, key: list[str], keys: pl.DataFrame) -> pl.DataFrame: ...
    def soc_insert(self, table: str, frame: pl.DataFrame) -> None: ...
    def soc_update(self, table: str, frame: pl.DataFrame, history: pl.DataFrame) -> None: ...
    def soc_history(self, entity: str | None = None) -> pl.DataFrame: ...
    def month_counts(
        self,
        table: str,
        date_col: str,
        set_name: str,
        first: dt.date,
        last: dt.date,
        code: str | None = None,
        scope: Scope = EVERYTHING,
    ) -> pl.DataFrame: ...
    def crime_locations(
        self,
        area: tuple[str, str],
        first: dt.date,
        last: dt.date,
        crime_types: list[str] | None = None,
        decimals: int = 4,
    ) -> pl.DataFrame: ...
    def crime_frame(self, columns: list[str] | None = None) -> pl.DataFrame: ...

    # radius search
    def located_within(
        self,
        table: str,
        columns: list[str],
        box: tuple[float, float, float, float],
        during: tuple[str, str, dt.date | None, dt.date | None] | None = None,
    ) -> pl.DataFrame: ...
    def addresses_matching(
        self, address_id: str | None, text: str | None, limit: int
    ) -> tuple[pl.DataFrame, int]: ...

    # users and sessions
    def upsert_user(
        self, username: str, display_name: str, role: str, password_hash: str, demo: bool
    ) -> None: ...
    def user(self, username: str) -> dict[str, Any] | None: ...
    def users(self) -> pl.DataFrame: ...
    def add_session(
        self,
        token_hash: str,
        username: str,
        expires_at: dt.datetime,
        created_at: dt.datetime | None = None,
    ) -> None: ...
    def session_user(self, token_hash: str, now: dt.datetime) -> str | None: ...
    def purge_sessions(self, now: dt.datetime) -> int: ...
    def end_session(self, token_hash: str) -> None: ...
    # accounts: disable, role, password, session lifetime (issue 12)
    def session(self, token_hash: str) -> dict[str, Any] | None: ...
    def touch_session(self, token_hash: str, seen_at: dt.datetime) -> None: ...
    def end_user_sessions(self, username: str) -> int: ...
    def end_demo_sessions(self) -> int: ...
    def set_user_disabled(self, username: str, disabled: bool, at: dt.datetime) -> bool: ...
    def set_user_role(self, username: str, role: str) -> bool: ...
    def set_user_password(self, username: str, password_hash: str, at: dt.datetime) -> bool: ...
    def has_real_soc_records(self) -> bool: ...
    # single sign-on accounts
    def user_by_subject(self, issuer: str, subject: str) -> dict[str, Any] | None: ...
    def add_sso_user(
        self,
        username: str,
        display_name: str,
        role: str,
        password_hash: str,
        issuer: str,
        subject: str,
    ) -> None: ...
    def update_sso_user(self, username: str, display_name: str, role: str) -> None: ...
    def end_sessions_by_source(self, auth_source: str) -> int: ...
    def latest_import(self) -> tuple[int, dt.datetime | None]: ...
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
    ) -> tuple[pl.DataFrame, int]: ...
    def crime_point_details(self, area: tuple[str, str], decimals: int = 4) -> pl.DataFrame: ...
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
    ) -> tuple[int, Iterator[pl.DataFrame]]: ...
    def restricted_only_nominals(self) -> list[str]: ...
    def mopi_overdue(
        self, today: dt.date, kinds: tuple[str, ...], scope: Scope = EVERYTHING
    ) -> pl.DataFrame: ...

    # registered harm indices (issue 12)
    def harm_indices(self) -> pl.DataFrame: ...
    def harm_index_weights(self) -> pl.DataFrame: ...
    def add_harm_index(self, meta: dict[str, object], weights: pl.DataFrame) -> None: ...
    def remove_harm_index(self, name: str) -> bool: ...
    # the audit log (append-only; placeharm.audit chains and verifies it)
    def in_transaction(self) -> bool: ...
    def after_transaction(self, hook: Callable[[bool], None]) -> None: ...
    def audit_head(self, at_least: int = 0) -> tuple[int, str] | None: ...
    def audit_append(self, entry: dict[str, Any]) -> None: ...
    def audit_entries(
        self,
        after_seq: int = 0,
        limit: int = 10_000,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> list[dict[str, Any]]: ...
    def audit_seq_of_hash(self, entry_hash: str) -> int | None: ...
    def audit_search(
        self,
        username: str | None,
        record: str | None,
        since: dt.datetime | None,
        until: dt.datetime | None,
        action: str | None,
        limit: int,
        offset: int = 0,
    ) -> tuple[pl.DataFrame, int]: ...
    def audit_usage(
        self, since: dt.datetime | None, until: dt.datetime | None
    ) -> dict[str, pl.DataFrame]: ...
    def set_justification(
        self, token_hash: str, purpose: str, reason_code: str, reason_text: str, now: dt.datetime
    ) -> None: ...
    def justification(self, token_hash: str, purpose: str) -> tuple[str, str] | None: ...
    def end_justifications(self, token_hash: str) -> None: ...

    # vintages and derived state (issue 13)
    def update_crimes_provenance(self, frame: pl.DataFrame) -> None: ...
    def delete_history_rows(self, table: str, rids: pl.Series) -> None: ...
    def insert_history_rows(self, table: str, frame: pl.DataFrame) -> None: ...
    def crime_versions(self, crime_id: str) -> tuple[pl.DataFrame, pl.DataFrame]: ...
    def invariant_failures(self) -> dict[str, int]: ...
    def repair_derived(self) -> dict[str, int]: ...

    # the harm cube, maintained (issue 14)
    def rebuild_crime_cells(self) -> int: ...

    # outcome rates (issue 15)
    def outcome_counts(
        self, set_name: str, first: dt.date, last: dt.date, area_code: str | None = None
    ) -> pl.DataFrame: ...
    def outcomes_of_crime_ids(self, crime_ids: list[str]) -> pl.DataFrame: ...

    # point-in-polygon grids kept per area set (issue 14)
    def area_grid(self, set_name: str) -> tuple[str, bytes] | None: ...
    def save_area_grid(self, set_name: str, digest: str, grid: bytes) -> None: ...
    def held_hashes(self, table: str, hash_col: str, hashes: pl.Series) -> pl.Series: ...
