"""Backups of the store: a consistent copy, recorded in the audit log as a disclosure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from placeharm import audit
from placeharm.audit import Actor, AuditLog
from placeharm.store import AnyStore


def back_up(
    store: AnyStore, dest: Path, actor: Actor, route: str, log: AuditLog | None = None
) -> dict[str, Any]:
    """Write a consistent copy of `store` to `dest` (`DuckDBStore.backup`) and record it in
    the audit log (`log`, else the store's) as a disclosure of every record. A copy whose
    entry cannot be written is removed: not recorded, not given. Returns the copy's schema
    version, rows per table and size."""
    info = store.backup(dest)
    try:
        (log or audit.log_for(store)).record(
            store,
            actor,
            "disclosure",
            "store",
            route,
            fmt="duckdb",
            query={"file": dest.name},
            row_count=sum(info["rows"].values()),
        )
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return info
