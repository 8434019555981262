"""The audit log above the store: append entries to the hash chain, forward them to syslog,
search them and summarise use.

The chain needs every entry to know the one before it, so appends in one process are
serialised by a lock per store file. An append for a read (a page view, a download) is a
short transaction of its own, shared with the reads' entries queued meanwhile (a group
commit: each returns once its entry is committed); an append for a write (an import, a
sign-in, a user change) joins the caller's transaction and keeps the lock until that
transaction ends, so the entry and the action commit together or not at all. Append as the
last step of a write, so the lock is held for the commit only, never for the work before it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import polars as pl

from placeharm.audit.entry import (
    ACTIONS,
    COLUMNS,
    GENESIS,
    Actor,
    Justification,
    canonical_json,
    entry_hash,
    entry_hmac,
    utc_now,
)
from placeharm.errors import AuditError, ConfigError
from placeharm.store.base import Store

log = logging.getLogger(__name__)


class _Chain:
    """The chain's state for one store file in this process: the lock and the newest entry
    this process wrote (a transaction that began before other appends cannot see them)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.head: tuple[int, str] | None = None
        self.local = threading.local()  # per thread: holding the lock for its transaction
        self.waiting: list[_Ticket] = []  # reads' entries queued for the next group commit
        self.waiting_lock = threading.Lock()


class _Ticket:
    """One read's entry waiting for its group commit, and what became of it."""

    __slots__ = ("entry", "error", "fields")

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.entry: dict[str, Any] | None = None
        self.error: BaseException | None = None


_CHAINS: dict[str, _Chain] = {}
_CHAINS_LOCK = threading.Lock()


def _chain(store: Store) -> _Chain:
    path = str(getattr(store, "path", ":memory:"))
    key = f"memory:{id(store)}" if path == ":memory:" else os.path.realpath(path)
    with _CHAINS_LOCK:
        return _CHAINS.setdefault(key, _Chain())


def syslog_handler(address: str) -> logging.handlers.SysLogHandler:
    """A handler for `udp://host:port`, `tcp://host:port` or a Unix socket path."""
    if address.startswith(("udp://", "tcp://")):
        parts = urlsplit(address)
        if not parts.hostname:
            raise ConfigError(f"audit_syslog {address!r} has no host: use udp://host:514")
        kind = socket.SOCK_DGRAM if parts.scheme == "udp" else socket.SOCK_STREAM
        return logging.handlers.SysLogHandler(
            address=(parts.hostname, parts.port or 514),
            facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV,
            socktype=kind,
        )
    if address.startswith("/"):
        return logging.handlers.SysLogHandler(
            address=address, facility=logging.handlers.SysLogHandler.LOG_AUTHPRIV
        )
    raise ConfigError(
        f"audit_syslog {address!r} is not valid: use udp://host:port, tcp://host:port or a "
        "socket path such as /dev/log"
    )


def to_line(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry as one JSON object (for a SIEM): identifiers and query as objects."""
    out = dict(entry)
    out["logged_at"] = entry["logged_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out["record_ids"] = json.loads(entry["record_ids"])
    out["query"] = json.loads(entry["query"])
    return out


def from_line(line: dict[str, Any]) -> dict[str, Any]:
    """The stored form of an exported entry (its hash can be checked again)."""
    entry = dict(line)
    entry["logged_at"] = dt.datetime.strptime(line["logged_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    entry["record_ids"] = canonical_json(line["record_ids"])
    entry["query"] = canonical_json(line["query"])
    return entry


@dataclass
class _Held:
    """What a thread appended inside its current transaction."""

    saved_head: tuple[int, str] | None
    entries: list[dict[str, Any]] = field(default_factory=list)


class AuditLog:
    """Append to, and read, one store's audit log. Build it from settings at an entry point
    (`from_settings`); it holds the HMAC key and the syslog forwarder."""

    def __init__(self, hmac_key: bytes | None = None, syslog: str | None = None) -> None:
        self.hmac_key = hmac_key
        self._syslog: logging.Logger | None = None
        if syslog:
            logger = logging.getLogger(f"placeharm.audit.syslog.{id(self)}")
            logger.propagate = False
            logger.setLevel(logging.INFO)
            handler = syslog_handler(syslog)
            handler.setFormatter(logging.Formatter("placeharm-audit: %(message)s"))
            logger.addHandler(handler)
            self._syslog = logger

    @classmethod
    def from_settings(cls, settings: Any) -> AuditLog:
        return cls(hmac_key(settings), settings.audit_syslog)

    def close(self) -> None:
        if self._syslog is not None:
            for handler in list(self._syslog.handlers):
                handler.close()
                self._syslog.removeHandler(handler)

    # -- writing -------------------------------------------------------------------------

    def record(
        self,
        store: Store,
        actor: Actor,
        action: str,
        page: str,
        route: str,
        *,
        fmt: str | None = None,
        record_ids: dict[str, list[str]] | None = None,
        query: dict[str, Any] | None = None,
        row_count: int | None = None,
        marking: str | None = None,
        justification: Justification | None = None,
        outcome: str = "ok",
    ) -> dict[str, Any]:
        """Append one entry and return it. Inside the caller's transaction the entry commits
        with it; otherwise in a transaction of its own. Raises AuditError if it cannot be
        written: the caller must then refuse what it was about to do."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        reason = justification or actor.justification
        fields: dict[str, Any] = {
            "logged_at": utc_now(),
            "username": actor.username,
            "role": actor.role,
            "client_address": actor.address,
            "action": action,
            "page": page,
            "route": route,
            "format": fmt,
            "record_ids": canonical_json(record_ids or {}),
            "query": canonical_json(query or {}),
            "row_count": row_count,
            "marking": marking,
            "reason_code": reason.reason_code if reason else None,
            "reason_text": reason.text if reason else None,
            "outcome": outcome,
        }
        chain = _chain(store)
        try:
            if store.in_transaction():
                return self._in_callers_transaction(store, chain, fields)
            entry = self._group_commit(store, chain, fields)
            self._forward([entry])
            return entry
        except AuditError:
            raise
        except Exception as exc:
            log.exception("the audit log could not be written")
            raise AuditError(
                "the audit log could not be written, so this was refused; try again, and "
                "tell the system administrator if it keeps happening"
            ) from exc

    def _group_commit(self, store: Store, chain: _Chain, fields: dict[str, Any]) -> dict[str, Any]:
        """Append a read's entry in a transaction of its own, committed with the entries of
        the reads that queued meanwhile (issue 14): under 50 clients one commit (its write to
        disk) per request was the server's ceiling. Whoever holds the chain's lock writes
        every entry queued, in order, in one transaction; each request still returns only
        once its own entry is committed, and gets the AuditError if that commit fails."""
        ticket = _Ticket(fields)
        with chain.waiting_lock:
            chain.waiting.append(ticket)
        with chain.lock:
            if ticket.entry is None and ticket.error is None:  # not written by another yet
                with chain.waiting_lock:
                    batch, chain.waiting = chain.waiting, []
                saved = chain.head
                try:
                    with store.transaction():
                        for i, queued in enumerate(batch):  # after the first: chained in memory
                            queued.entry = self._append(
                                store, chain, queued.fields, fresh=True, head_known=i > 0
                            )
                except BaseException as exc:
                    chain.head = saved
                    for queued in batch:
                        queued.entry, queued.error = None, exc
        if ticket.error is not None:
            raise ticket.error
        assert ticket.entry is not None
        return ticket.entry

    def _in_callers_transaction(
        self, store: Store, chain: _Chain, fields: dict[str, Any]
    ) -> dict[str, Any]:
        held: _Held | None = getattr(chain.local, "held", None)
        if held is None:
            chain.lock.acquire()
            held = _Held(chain.head)
            chain.local.held = held

            def end(committed: bool) -> None:
                chain.local.held = None
                if not committed:
                    chain.head = held.saved_head
                chain.lock.release()
                if committed:
                    self._forward(held.entries)

            try:
                store.after_transaction(end)
            except BaseException:
                chain.local.held = None
                chain.lock.release()
                raise
        entry = self._append(store, chain, fields, fresh=False)
        held.entries.append(entry)
        return entry

    def _append(
        self,
        store: Store,
        chain: _Chain,
        fields: dict[str, Any],
        fresh: bool,
        head_known: bool = False,
    ) -> dict[str, Any]:
        """Chain and insert one entry; the caller holds the chain lock in a transaction.
        `head_known`: this transaction has just appended `chain.head`, so that is the head
        (no need to read it back)."""
        stored = chain.head if head_known else store.audit_head(chain.head[0] if chain.head else 0)
        head = stored
        if not fresh and chain.head is not None and (stored is None or chain.head[0] > stored[0]):
            # this transaction began before entries this process has since committed
            head = chain.head
        seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
        entry = {"seq": seq, **fields, "prev_hash": prev}
        entry["entry_hash"] = entry_hash(entry)
        entry["hmac"] = entry_hmac(entry, self.hmac_key) if self.hmac_key else None
        store.audit_append(entry)
        chain.head = (seq, entry["entry_hash"])
        return entry

    def _forward(self, entries: list[dict[str, Any]]) -> None:
        """Copy entries to syslog. The store is the record: a syslog failure is logged here
        and does not refuse the action (SysLogHandler reports its own errors)."""
        if self._syslog is None:
            return
        for entry in entries:
            self._syslog.info(canonical_json(to_line(entry)))

    # -- reading -------------------------------------------------------------------------

    def search(
        self,
        store: Store,
        username: str | None = None,
        record: str | None = None,
        since: dt.date | None = None,
        until: dt.date | None = None,
        action: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[pl.DataFrame, int]:
        """Entries by user, record identifier, day range [since, until] and action."""
        if action is not None and action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        needle = json.dumps(record, ensure_ascii=False) if record else None
        return store.audit_search(
            username or None,
            needle,
            _day_start(since),
            _day_start(until + dt.timedelta(days=1)) if until else None,
            action,
            limit,
            offset,
        )

    def usage(
        self, store: Store, since: dt.date | None = None, until: dt.date | None = None
    ) -> dict[str, pl.DataFrame]:
        """Uptake: totals, and by ISO week users and page views, views by page kind, wards."""
        return store.audit_usage(
            _day_start(since), _day_start(until + dt.timedelta(days=1)) if until else None
        )


def _day_start(day: dt.date | None) -> dt.datetime | None:
    return None if day is None else dt.datetime.combine(day, dt.time())


def hmac_key(settings: Any) -> bytes | None:
    """The HMAC key from settings (`audit_hmac_key`, else `audit_hmac_key_file`)."""
    secret = settings.audit_hmac_key
    key: bytes
    if secret is not None:
        key = str(secret.get_secret_value()).encode()
    elif settings.audit_hmac_key_file is not None:
        try:
            key = Path(settings.audit_hmac_key_file).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(
                "the audit_hmac_key_file setting names a file that cannot be read; check "
                "that it exists and that placeharm may read it"
            ) from exc
    else:
        return None
    if len(key) < 32:
        raise ConfigError(
            "the audit HMAC key is too short: use at least 32 characters, e.g. the output "
            "of `python -c 'import secrets; print(secrets.token_hex(32))'`"
        )
    return key


__all__ = ["COLUMNS", "AuditLog", "from_line", "hmac_key", "to_line"]
