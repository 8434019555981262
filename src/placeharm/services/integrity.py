"""The store's invariants (`placeharm check`) and a crime's versions (`placeharm history`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from placeharm import audit
from placeharm.errors import DataError, NotFound
from placeharm.store.base import CELLS_CHECK, Store

# Failures `--repair` can fix: columns derived from other stored data.
DERIVED = (
    "crimes with a stale latest outcome",
    "crimes with a stale in_area flag",
    "stop_searches with a stale in_area flag",
    CELLS_CHECK,
)


@dataclass(slots=True)
class CheckReport:
    """Rows breaking each invariant (0: holds), the audit chain's verdict, what was repaired."""

    failures: dict[str, int]
    audit_entries: int = 0
    audit_problem: str | None = None
    repaired: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.audit_problem is None and not any(self.failures.values())


def check(store: Store, repair: bool = False, hmac_key: bytes | None = None) -> CheckReport:
    """Verify every invariant; with `repair`, recompute the derived columns and the harm
    cube's cells first, in one transaction, and report what that changed. Facts (rows,
    accounts, the audit log) are never changed: a failure among them is reported for a
    person to look at."""
    repaired: dict[str, int] = {}
    if repair:
        with store.transaction():
            before = store.invariant_failures()
            store.repair_derived()
            repaired = {k: before[k] for k in DERIVED if before.get(k)}
    report = CheckReport(store.invariant_failures(), repaired=repaired)
    verdict = audit.verify(store, hmac_key)
    report.audit_entries = verdict.checked
    report.audit_problem = verdict.problem
    return report


def crime_history(store: Store, crime_id: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A crime's versions (current, earlier downloads, later-month sightings) and outcomes
    (held and superseded), each with its import, file and vintage. NotFound if none."""
    crime_id = crime_id.strip()
    if not crime_id or len(crime_id) > 200:
        raise DataError("give a police.uk Crime ID (the 64-character code in the file)")
    versions, outcomes = store.crime_versions(crime_id)
    if versions.is_empty() and outcomes.is_empty():
        raise NotFound(f"no crime {crime_id} is held; check the ID (`placeharm counts` lists none)")
    return versions, outcomes
