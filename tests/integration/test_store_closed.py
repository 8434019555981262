"""A store used after `close()` refuses, on both engines: it never opens a connection again
(issue 17, left open: a closed PostgresStore used to reconnect quietly)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from placeharm.errors import StoreClosed

pytestmark = pytest.mark.both_engines


def _refused(call: Callable[[], object]) -> str:
    with pytest.raises(StoreClosed) as caught:
        call()
    return str(caught.value)


def _uses(store: Any) -> dict[str, Callable[[], object]]:
    def enter(manager: Callable[[], Any]) -> Callable[[], object]:
        return lambda: manager().__enter__()

    return {
        "schema_version": store.schema_version,
        "area_sets": store.area_sets,
        "users": store.users,
        "user": lambda: store.user("someone"),
        "purge_sessions": lambda: store.purge_sessions(dt.datetime(2026, 1, 1)),
        "transaction": enter(store.transaction),
        "snapshot": enter(store.snapshot),
        "records_stream": lambda: store.records_stream(
            "crimes", ["crime_id"], None, None, "month", None, None, "month", False
        ),
    }


def test_a_closed_store_refuses_every_use(store_at, engine: str) -> None:
    store = store_at("closed")
    assert store.area_sets() == []
    store.close()
    for name, use in _uses(store).items():
        message = _refused(use)
        assert "closed" in message and "open it anew" in message, name
        # the message names the store as every other store message does, never a password
        assert store.path in message, name
    store.close()  # closing again does nothing more
    assert _refused(store.area_sets)


def test_a_thread_that_never_used_the_store_is_refused_too(store_at) -> None:
    """Another thread's first use after close is where PostgreSQL used to open a connection."""
    store = store_at("closed-thread")
    store.close()
    failures: list[BaseException] = []

    def use() -> None:
        try:
            store.area_sets()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join(30)
    assert len(failures) == 1 and isinstance(failures[0], StoreClosed)


def test_postgresql_opens_no_connection_after_close(store_at, engine: str) -> None:
    if engine != "postgresql":
        pytest.skip("connections and LISTEN are PostgreSQL's (DuckDB has one file handle)")
    store = store_at("closed-pg")
    store.listen(lambda: None)
    held = store.hold_lock(987_654)
    assert held is not None and held()
    store.close()
    assert store.open_connections() == 0
    with psycopg.connect(store._url, autocommit=True) as watch:
        (since,) = watch.execute("SELECT clock_timestamp()").fetchone() or (None,)
        for use in _uses(store).values():
            _refused(use)
        _refused(lambda: store.listen(lambda: None))
        _refused(lambda: store.hold_lock(987_655))
        assert not held()  # the lock's connection closed with the store
        assert store.open_connections() == 0
        # no backend began on the server since the close but this one watching
        (opened,) = watch.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_start >= %s "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            [since],
        ).fetchone() or (None,)
    assert opened == 0
