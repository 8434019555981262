"""Connections per app process on PostgreSQL are bounded by `request_threads` (issue 17).

Each thread that reads the PostgreSQL store holds one connection of its own while it lives
(so a page's reads are one snapshot on one connection). Requests' blocking work runs on the
server's worker threads, so their number is what bounds a worker's connections: with
anyio's default of 40 threads, 4 workers could ask for 160 connections and meet PostgreSQL's
default `max_connections` of 100 ("too many clients already")."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from placeharm.config import load_settings
from placeharm.web.app import create_app

from .conftest import pg_copy, sign_in

THREADS = 3
CLIENTS = 12


def _waiting_on_sessions(url: str) -> int:
    """Server processes waiting for the lock on `sessions` (each a request's connection)."""
    with psycopg.connect(url, autocommit=True) as con:
        row = con.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%FROM sessions%' AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


def test_postgresql_connections_per_worker_are_capped_by_request_threads(
    pristine_db: Path, request: pytest.FixtureRequest
) -> None:
    url = pg_copy(pristine_db, request)
    app = create_app(load_settings(db=url, request_threads=THREADS))
    with TestClient(app) as client:
        analyst = sign_in(client, "analyst")
        store = app.state.placeharm.store
        answers: list[int] = []
        # every request asks the store for its session first: with `sessions` locked, each
        # request that got a thread waits there, holding that thread's connection

        def one() -> None:
            answers.append(client.get("/api/records?kind=crimes", cookies=analyst).status_code)

        callers = [threading.Thread(target=one, daemon=True) for _ in range(CLIENTS)]
        locker = psycopg.connect(url)
        try:
            locker.execute("LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE")
            for caller in callers:
                caller.start()
            deadline = time.monotonic() + 30
            while _waiting_on_sessions(url) < THREADS:
                assert time.monotonic() < deadline, "the requests never reached the store"
                time.sleep(0.05)
            time.sleep(1.0)  # time for more requests to take threads, were any free
            # as many waiting as there are threads, however many requests are in flight
            assert _waiting_on_sessions(url) == THREADS
            # the threads' connections, and at most 6 of the store's own
            assert store.open_connections() <= THREADS + 6
        finally:
            locker.rollback()  # lift the lock: the queued requests go on
            locker.close()
            for caller in callers:  # before the app stops, pass or fail
                if caller.is_alive():
                    caller.join(60)
        assert answers == [200] * CLIENTS
