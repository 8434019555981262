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

import logging
from pathlib import Path

from placeharm.config import Settings, load_settings
from placeharm.errors import (
    ConfigError,
    DataError,
    ImportFailed,
    NotFound,
    PermissionDenied,
    PlaceharmError,
    StoreError,
    Unexpected,
    boundary,
)
from placeharm.harm import HarmIndex
from placeharm.harm import custom_index as _custom_index
from placeharm.harm import list_indices as _list_indices
from placeharm.harm import load_index as _load_index
from placeharm.model import AreaSetInfo, ImportResult, QuarantineRow
from placeharm.model import parse_month as _parse_month
from placeharm.services import areas as _areas
from placeharm.services import harm as _harm
from placeharm.services import ingest as _ingest
from placeharm.services import population as _population
from placeharm.services import queries as _queries
from placeharm.services.harm import HarmResult
from placeharm.services.queries import CountsResult
from placeharm.store import AnyStore, open_db
from placeharm.store.duckdb import DuckDBStore

# A library leaves logging to its application: without a handler of theirs, nothing of
# placeharm's (a failed file's traceback, say) reaches standard error.
logging.getLogger("placeharm").addHandler(logging.NullHandler())

# The entry points raise PlaceharmError subclasses only: a native library's panic or a bug
# becomes `Unexpected` (docs/library.md). Inside placeharm, errors propagate.
assign_pending = boundary(_areas.assign_pending)
import_areas = boundary(_areas.import_areas)
import_lookup = boundary(_areas.import_lookup)
parents = boundary(_areas.parents)
compare = boundary(_harm.compare)
concentration = boundary(_harm.concentration)
css = boundary(_harm.css)
rank = boundary(_harm.rank)
series = boundary(_harm.series)
ingest = boundary(_ingest.ingest)
derive_population = boundary(_population.derive_population)
import_population = boundary(_population.import_population)
counts = boundary(_queries.counts)
coverage = boundary(_queries.coverage)
imports = boundary(_queries.imports)
quarantine = boundary(_queries.quarantine)
custom_index = boundary(_custom_index)
list_indices = boundary(_list_indices)
load_index = boundary(_load_index)
parse_month = boundary(_parse_month)


@boundary
def open_store(path: str | Path | None = None, settings: Settings | None = None) -> AnyStore:
    """Open (creating and upgrading as needed) the store at `path` or the configured one: a
    DuckDB file, or a PostgreSQL database given as postgresql://... (docs/deploy.md)."""
    settings = settings or load_settings()
    return open_db(
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
    "ImportFailed",
    "ImportResult",
    "NotFound",
    "PermissionDenied",
    "PlaceharmError",
    "QuarantineRow",
    "Settings",
    "StoreError",
    "Unexpected",
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
