"""MoPI (Management of Police Information): records past their review date.

The College of Policing's Authorised Professional Practice on information management asks
that each record kept is reviewed by a set date: keep it (and set the next date) or dispose
of it. Nominals and intelligence carry `mopi_review_date`; those past it are listed for the
roles that review them (analysts, supervisors, admins) and flagged on the nominal's page.
Only identifiers and dates are listed, never what a record says.

"Today" comes from a clock the caller passes (the web app's `State.today`), so tests and a
review of a past date can set it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import polars as pl

from placeharm.services import policy
from placeharm.services.policy import User
from placeharm.store.base import Store

KINDS = ("nominals", "intelligence")  # the record kinds with a MoPI review date
Clock = Callable[[], dt.date]


def system_today() -> dt.date:
    """Today's date on the server (the default clock)."""
    return dt.date.today()


def overdue(store: Store, user: User, today: dt.date) -> pl.DataFrame:
    """Nominals and intelligence the user may see whose review date is before `today`:
    kind, record_id, review_date, days_overdue, most overdue first."""
    policy.require(user, "mopi")
    kinds = tuple(k for k in KINDS if k in policy.record_kinds(user))
    return store.mopi_overdue(today, kinds, policy.scope(store, user))


def counts(frame: pl.DataFrame) -> dict[str, int]:
    """How many records of each kind are overdue (every kind listed, 0 when none)."""
    found = dict(frame.group_by("kind").len().iter_rows()) if frame.height else {}
    return {kind: int(found.get(kind, 0)) for kind in KINDS}


def review(review_date: dt.date | None, today: dt.date) -> dict[str, Any]:
    """One record's review state: its date, whether it is past, and by how many days."""
    if review_date is None:
        return {"review_date": None, "overdue": False, "days_overdue": None}
    days = (today - review_date).days
    return {
        "review_date": review_date.isoformat(),
        "overdue": days > 0,
        "days_overdue": max(days, 0),
    }
