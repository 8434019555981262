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

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

import polars as pl

from placeharm.errors import StoreError
from placeharm.model import check_area_set_name

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

        def refresh_latest_outcomes(self, hashes: pl.Series | None = None) -> int: ...

        def refresh_in_area(self, table: str) -> None: ...

        def _maintain_cells(self) -> None: ...

        def _cells_differing(self) -> int: ...

        def rebuild_crime_cells(self) -> int: ...

    # -- transactions and rows: the engine-neutral part of the helpers ----------------------

    @property
    def _in_tx(self) -> bool:
        return bool(getattr(self._local, "in_tx", False))

    @_in_tx.setter
    def _in_tx(self, value: bool) -> None:
        self._local.in_tx = value

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
