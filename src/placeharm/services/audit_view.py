"""The audit page: search the audit log by user, record identifier, dates and action, and
summarise the dashboard's use by ISO week (for the auditor role only)."""

from __future__ import annotations

import datetime as dt

from placeharm.audit import ACTIONS, AuditLog
from placeharm.errors import DataError
from placeharm.services import policy
from placeharm.services.pages import Page, data_as_of
from placeharm.services.policy import User
from placeharm.store.base import AUDIT_COLUMNS, Store

PAGE_SIZE = 100
_SHOWN = tuple(c for c in AUDIT_COLUMNS if c not in ("prev_hash", "entry_hash", "hmac"))


def _day(text: str | None, what: str) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DataError(f"{what} {text[:20]!r} is not a date; use YYYY-MM-DD") from None


def audit_page(
    store: Store,
    log: AuditLog,
    user: User,
    username: str | None = None,
    record: str | None = None,
    first: str | None = None,
    last: str | None = None,
    action: str | None = None,
    page: str = "1",
) -> Page:
    """Entries matching the search (newest first, a page at a time) and the usage summary
    for the same dates."""
    policy.require(user, "audit")
    since, until = _day(first, "from"), _day(last, "to")
    if since and until and since > until:
        raise DataError("'from' is after 'to'")
    if action and action not in ACTIONS:
        raise DataError(f"no action {action[:30]!r}; use one of {', '.join(ACTIONS)}")
    if not page.isdigit() or not 1 <= int(page) <= 1_000_000:
        raise DataError("page is a whole number from 1")
    number = int(page)
    username = (username or "").strip()[:100] or None
    record = (record or "").strip()[:200] or None
    entries, total = log.search(
        store,
        username,
        record,
        since,
        until,
        action or None,
        limit=PAGE_SIZE,
        offset=(number - 1) * PAGE_SIZE,
    )
    usage = log.usage(store, since, until)
    data = {
        **data_as_of(store),  # the demo banner and the footer, as on every page
        "search": {
            "user": username,
            "record": record,
            "from": since.isoformat() if since else None,
            "to": until.isoformat() if until else None,
            "action": action or None,
        },
        "actions": list(ACTIONS),
        "page": number,
        "page_size": PAGE_SIZE,
        "total": total,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "usage": usage["totals"].row(0, named=True),
    }
    return Page(
        "audit",
        "Audit log: who looked at what",
        data,
        {
            "entries": entries.select([c for c in _SHOWN if c in entries.columns]),
            "weekly": usage["weekly"],
            "pages": usage["pages"],
            "wards": usage["wards"],
        },
    )
