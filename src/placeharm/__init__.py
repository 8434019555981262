"""placeharm: serious and organised crime harm by place.

The library API mirrors the CLI; results come back as polars frames (`.to_arrow()` for Arrow):

    import placeharm as ph
    with ph.open_store("placeharm.duckdb") as store:
        ph.import_areas(store, "wards.geojson", "ward")
        ph.ingest(store, ["data/"])
        ph.counts(store, "ward", ph.parse_month("2021-01"), ph.parse_month("2021-12")).table
        ph.rank(store, "ward", ph.parse_month("2021-01"), ph.parse_month("2021-12"),
                index=ph.load_index("css:northumbria")).table
"""

from __future__ import annotations

from pathlib import Path

from placeharm.config import Settings, load_settings
from placeharm.errors import (
    ConfigError,
    DataError,
    NotFound,
    PermissionDenied,
    PlaceharmError,
    StoreError,
)
from placeharm.harm import HarmIndex, custom_index, list_indices, load_index
from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow, parse_month
from placeharm.services.areas import assign_pending, import_areas, import_lookup, parents
from placeharm.services.harm import HarmResult, compare, concentration, css, rank, series
from placeharm.services.ingest import ingest
from placeharm.services.population import derive_population, import_population
from placeharm.services.queries import CountsResult, counts, coverage, imports, quarantine
from placeharm.store.duckdb import DuckDBStore


def open_store(path: str | Path | None = None, settings: Settings | None = None) -> DuckDBStore:
    """Open (creating and upgrading as needed) the store at `path` or the configured one."""
    settings = settings or load_settings()
    return DuckDBStore(
        path or settings.db, threads=settings.threads, memory_limit=settings.memory_limit
    )


__all__ = [
    "AreaSetInfo",
    "ConfigError",
    "CountsResult",
    "DataError",
    "DuckDBStore",
    "HarmIndex",
    "HarmResult",
    "ImportResult",
    "NotFound",
    "PermissionDenied",
    "PlaceharmError",
    "QuarantineRow",
    "Settings",
    "StoreError",
    "assign_pending",
    "compare",
    "concentration",
    "counts",
    "coverage",
    "css",
    "custom_index",
    "derive_population",
    "import_areas",
    "import_lookup",
    "import_population",
    "imports",
    "ingest",
    "list_indices",
    "load_index",
    "load_settings",
    "open_store",
    "parents",
    "parse_month",
    "quarantine",
    "rank",
    "series",
]
