"""Reads' audit entries committed in groups (issue 14): entries queued while another is being
written are written together, in order, in one transaction; each request gets back its own
entry only once it is committed, and every one of them gets the AuditError if that commit
fails (so each refuses its response)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

import placeharm
from placeharm import audit
from placeharm.audit import Actor, AuditLog
from placeharm.audit.log import _chain
from placeharm.errors import AuditError
from placeharm.store import AnyStore, is_server_url
from placeharm.store.duckdb import DuckDBStore
from placeharm.store.postgres import PostgresStore

pytestmark = pytest.mark.both_engines  # issue 17: DuckDB and PostgreSQL

KEY = b"k" * 40
READERS = 12


def _actor(n: int) -> Actor:
    return Actor(f"reader{n}", "analyst", "10.0.0.9", None)


def _read_all(log: AuditLog, store: DuckDBStore) -> tuple[dict[int, dict], list[BaseException]]:
    """READERS threads each record one read while the chain's lock is held (so they all
    queue), then the lock is let go: their entries by thread, and any errors."""
    chain = _chain(store)
    got: dict[int, dict] = {}
    errors: list[BaseException] = []
    queued = threading.Barrier(READERS + 1)

    def read(n: int) -> None:
        queued.wait()
        try:
            got[n] = log.record(store, _actor(n), "consultation", "ward", f"/ward/W{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(n,)) for n in range(READERS)]
    with chain.lock:  # a write (or the previous group) under way
        for t in threads:
            t.start()
        queued.wait()
        while len(chain.waiting) < READERS:  # every reader has queued its entry
            threading.Event().wait(0.01)
    for t in threads:
        t.join(60)
    return got, errors


def test_entries_queued_meanwhile_commit_together_each_its_own(tmp_path: Path, store_at):
    log = AuditLog(KEY)
    with store_at("s") as store:
        log.record(store, _actor(99), "consultation", "overview", "/overview")
        got, errors = _read_all(log, store)
        assert not errors and len(got) == READERS
        for n, entry in got.items():  # each request's own entry, as stored
            assert entry["username"] == f"reader{n}" and entry["route"] == f"/ward/W{n}"
        stored = {e["seq"]: e for e in store.audit_entries()}
        assert sorted(e["seq"] for e in got.values()) == list(range(2, READERS + 2))
        for entry in got.values():
            assert stored[entry["seq"]]["entry_hash"] == entry["entry_hash"]
        report = audit.verify(store, KEY)
        assert report.ok and report.checked == READERS + 1


def _unwritable(place: str, tmp_path: Path) -> AnyStore:
    """The store at `place` opened so that every write fails in the database: a read-only
    copy of a DuckDB file (DuckDB refuses writes to a file opened read-only), or on
    PostgreSQL a session whose transactions are read-only (the server refuses writes: the
    store itself is opened writable, so its own read-only check does not refuse first)."""
    if not is_server_url(place):
        readonly = tmp_path / "ro.duckdb"
        shutil.copy(place, readonly)
        return DuckDBStore(readonly, read_only=True)
    parts = urlsplit(place)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -c default_transaction_read_only=on"
    return PostgresStore(
        urlunsplit(parts._replace(query=urlencode(query, quote_via=quote))), migrate=False
    )


def test_a_failed_group_commit_refuses_every_request_in_it(tmp_path: Path, db_at):
    path = db_at("s")
    with placeharm.open_store(path) as store:
        AuditLog(KEY).record(store, _actor(99), "consultation", "overview", "/overview")
    with _unwritable(path, tmp_path) as store:  # every write fails
        got, errors = _read_all(AuditLog(KEY), store)
        assert not got and len(errors) == READERS
        assert all(isinstance(e, AuditError) for e in errors)
        assert len(store.audit_entries()) == 1
    with placeharm.open_store(path) as store:  # and the chain goes on where it was
        entry = AuditLog(KEY).record(store, _actor(1), "consultation", "ward", "/ward/W1")
        assert entry["seq"] == 2 and audit.verify(store, KEY).ok


@pytest.mark.parametrize("threads", [8])
def test_reads_and_writes_side_by_side_keep_one_chain(tmp_path: Path, store_at, threads: int):
    log = AuditLog(KEY)
    with store_at("s") as store:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(12):
                    if i % 4 == 0:
                        with store.transaction():
                            log.record(store, _actor(n), "alteration", "user", f"w{n}")
                    else:
                        log.record(store, _actor(n), "consultation", "ward", f"r{n}")
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join(60)
        assert not errors
        report = audit.verify(store, KEY)
        assert report.ok and report.checked == threads * 12
