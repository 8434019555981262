"""Stores: all SQL lives here. `Store` is the interface; `DuckDBStore` the embedded engine."""

from placeharm.store.base import Store
from placeharm.store.duckdb import DuckDBStore

__all__ = ["DuckDBStore", "Store"]
