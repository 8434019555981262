"""Record who looked at what (DPA 2018 s.62): a hash-chained, append-only audit log.

`Actor` is made at the web and CLI boundaries; `AuditLog.record` appends an entry (collection,
alteration, consultation, disclosure, erasure, sign-in/out, justification); `verify` walks the
chain; `export_lines` writes JSON lines for a SIEM. See docs/security/audit.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from pathlib import Path
from typing import Any

from placeharm.audit.entry import (
    ACTIONS,
    DROP_FOLDER,
    MAX_REASON_TEXT,
    PURPOSES,
    REASONS,
    Actor,
    Justification,
    utc_now,
)
from placeharm.audit.log import AuditLog, from_line, hmac_key, to_line
from placeharm.audit.verify import VerifyReport, export_lines, verify, verify_entries
from placeharm.model import ImportResult
from placeharm.store.base import Store

_ATTACHED: weakref.WeakKeyDictionary[Any, AuditLog] = weakref.WeakKeyDictionary()
_DEFAULT = AuditLog()


def session_key(token: str) -> str:
    """What a session is known by in the store: the SHA-256 of its cookie value (as
    services.auth stores it), never the value."""
    return hashlib.sha256(token.encode()).hexdigest()


def attach(store: Store, log: AuditLog) -> None:
    """Make `log` (with the configured HMAC key and syslog) the one used for `store` by
    services that write, such as imports. Entry points call this when they open a store."""
    _ATTACHED[store] = log


def log_for(store: Store) -> AuditLog:
    """The audit log attached to `store`, else one without HMAC key or syslog."""
    return _ATTACHED.get(store, _DEFAULT)


def record_imports(
    store: Store,
    actor: Actor | None,
    entries: list[tuple[ImportResult, dt.datetime, str]],
    route: str,
) -> None:
    """Write the import log (saying who imported) and one collection entry per file, in
    the caller's transaction."""
    actor = actor or Actor.cli()
    store.log_imports(entries, imported_by=actor.username)
    for result, _started, sha256 in entries:
        log_for(store).record(
            store,
            actor,
            "collection",
            "import",
            route,
            fmt="file",
            record_ids={"import": [str(result.import_id)]} if result.import_id else {},
            query={
                "file": Path(result.source_file).name[:200],
                "kind": result.source_kind,
                "sha256": sha256 or None,
                "inserted": result.inserted,
                "updated": result.updated,
                "quarantined": result.quarantined,
            },
            row_count=result.rows_read,
            outcome=result.status,
        )


def state_justification(
    store: Store, actor: Actor, purpose: str, justification: Justification
) -> None:
    """Keep a session's justification for a purpose and log that it was stated."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    if actor.session is None:
        raise ValueError("a justification belongs to a signed-in session")
    with store.transaction():
        store.set_justification(
            actor.session, purpose, justification.reason_code, justification.text, utc_now()
        )
        log_for(store).record(
            store,
            actor,
            "justification",
            purpose,
            "justification",
            query={"purpose": purpose},
            justification=justification,
        )


def justification_for(store: Store, actor: Actor, purpose: str) -> Justification | None:
    """The justification this session stated for `purpose`, if any."""
    if actor.session is None:
        return None
    found = store.justification(actor.session, purpose)
    return None if found is None else Justification(*found)


__all__ = [
    "ACTIONS",
    "DROP_FOLDER",
    "MAX_REASON_TEXT",
    "PURPOSES",
    "REASONS",
    "Actor",
    "AuditLog",
    "Justification",
    "VerifyReport",
    "attach",
    "export_lines",
    "from_line",
    "hmac_key",
    "justification_for",
    "log_for",
    "record_imports",
    "session_key",
    "state_justification",
    "to_line",
    "verify",
    "verify_entries",
]
