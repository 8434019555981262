"""A PostgreSQL store shared by several app processes (issue 17), at the store's level: two
store objects on one database stand for two processes (each has its own connections).

The same behaviour through a real `placeharm serve --workers 2` is in test_workers.py.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from placeharm.errors import TooManyAttempts
from placeharm.services import auth
from placeharm.services.ingest import ingest

pytestmark = pytest.mark.parametrize("engine", ["postgresql"], indirect=True)

PASSWORD = "Kestrel-harbour-lantern-42"


def _listeners(url: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute(
            "SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN placeharm_changed%' "
            "AND pid <> pg_backend_pid()"
        ).fetchall()
    return [int(r[0]) for r in rows]


def _until(condition: object, seconds: float = 15.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


def test_listening_survives_a_terminated_connection(store_at, northumbria: Path) -> None:
    first, second = store_at("shared"), store_at("shared")
    heard: list[float] = []
    others = set(_listeners(first._url))  # other tests' stores on the same server
    stop = second.listen(lambda: heard.append(time.monotonic()))
    try:
        seen = second.generation
        assert second.generation == seen  # answered from memory while listening
        (backend,) = set(_listeners(first._url)) - others
        with psycopg.connect(first._url, autocommit=True) as con:
            con.execute("SELECT pg_terminate_backend(%s)", [backend])
        # reconnected, on a new backend, and the reconnection counted as a change (a commit
        # made while deaf told nobody)
        _until(lambda: len(set(_listeners(first._url)) - others - {backend}) == 1)
        _until(lambda: len(heard) >= 1)
        after_reconnect = len(heard)
        assert ingest(first, [northumbria / "2021-05-northumbria-street.csv.gz"])[0].ok
        _until(lambda: len(heard) > after_reconnect)  # another process's commit is heard
        assert second.generation != seen
        assert second.generation == first.generation
    finally:
        stop()
    assert not set(_listeners(first._url)) - others  # stopping closes its connection


def test_generation_read_from_memory_never_leads_the_data(store_at, northumbria: Path) -> None:
    first, second = store_at("shared"), store_at("shared")
    stop = second.listen(lambda: None)
    try:
        before = second.generation
        with second.snapshot():  # a read that began before the commit ...
            assert second.generation == before
            assert ingest(first, [northumbria / "2021-05-northumbria-street.csv.gz"])[0].ok
            # ... goes on seeing its own snapshot's generation, not the newer one
            assert second.generation == before
            assert second.table_counts()["crimes"] == 0
        _until(lambda: second.generation == first.generation)
        assert second.generation != before
    finally:
        stop()
    first.upsert_user("ann", "Ann", "analyst", "x", demo=False)
    assert second.generation == first.generation  # not listening: asked every time


def test_a_session_ended_by_one_process_is_refused_by_the_other_at_once(store_at) -> None:
    first, second = store_at("shared"), store_at("shared")
    auth.create_user(first, "ann", "Ann Tester", "analyst", PASSWORD)
    token = auth.login(first, "ann", PASSWORD)
    lock = threading.RLock()
    caches = [auth.SessionCache(recheck_s=0, touch_s=auth.TOUCH_S) for _ in range(2)]
    for cache, store in zip(caches, (first, second), strict=True):
        assert cache.look_up(store, token, lock) is not None
        assert cache.remembered(token) is None  # never answered from memory: ask the store
    auth.logout(first, token)
    assert caches[1].look_up(second, token, lock) is None


def test_every_request_asks_the_store_but_last_seen_is_written_once_a_minute(store_at) -> None:
    store = store_at("shared")
    auth.create_user(store, "ann", "Ann Tester", "analyst", PASSWORD)
    t0 = auth.utcnow()
    token = auth.start_session(store, "ann", t0)
    now = [t0 + dt.timedelta(seconds=30)]
    cache = auth.SessionCache(clock=lambda: now[0], recheck_s=0, touch_s=auth.TOUCH_S)
    key = auth._token_hash(token)
    assert cache.look_up(store, token, threading.RLock()) is not None
    assert store.session(key)["last_seen_at"] == t0  # 30 s: not yet written
    now[0] = t0 + dt.timedelta(seconds=61)
    assert cache.look_up(store, token, threading.RLock()) is not None
    assert store.session(key)["last_seen_at"] == now[0]


def test_sign_in_failures_are_counted_together_by_every_process(store_at) -> None:
    first, second = store_at("shared"), store_at("shared")
    now = [1_000_000.0]
    throttles = [
        auth.StoreLoginThrottle(store, per_account=5, per_address=10, clock=lambda: now[0])
        for store in (first, second)
    ]
    for attempt in range(4):
        throttles[attempt % 2].failed("Ann", "10.0.0.1")
    for throttle in throttles:
        throttle.check("ann", "10.0.0.1")  # four: not yet
    throttles[0].failed("ann", "10.0.0.1")  # the fifth, counted by either process
    for throttle in throttles:
        with pytest.raises(TooManyAttempts) as refused:
            throttle.check("ANN", "10.0.0.1")
        assert refused.value.retry_after_s == 60
        throttle.check("ann", "10.0.0.2")  # another address may still try
    now[0] += 61  # the pause ends; five more lock out for twice as long
    for attempt in range(5):
        throttles[attempt % 2].failed("ann", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        throttles[1].check("ann", "10.0.0.1")
    assert refused.value.retry_after_s == 120
    # the address's own count: ten failures over any names from one address
    now[0] += 121
    for n in range(10):
        throttles[n % 2].failed(f"user{n}", "10.0.0.3")
    with pytest.raises(TooManyAttempts):
        throttles[0].check("someone-else", "10.0.0.3")
    # a right password clears the pair everywhere, not the address; idle tallies are forgotten
    throttles[0].failed("bo", "10.0.0.4")
    throttles[1].succeeded("bo", "10.0.0.4")
    assert '["account", "bo", "10.0.0.4"]' not in first.sign_in_tallies(
        ['["account", "bo", "10.0.0.4"]']
    )
    now[0] += 86_400 + 3600
    throttles[0].failed("late", "10.0.0.5")
    held = first.sign_in_tallies(['["address", "10.0.0.3"]', '["address", "10.0.0.5"]'])
    assert list(held) == ['["address", "10.0.0.5"]']


def test_sign_in_attempts_in_flight_are_counted_together_by_every_process(store_at) -> None:
    """Guesses sent at once to two workers: five passwords are checked, the sixth waits,
    whichever process it reaches (review finding: each worker checked its own share)."""
    first, second = store_at("shared"), store_at("shared")
    now = [2_000_000.0]
    throttles = [
        auth.StoreLoginThrottle(store, per_account=5, per_address=10, clock=lambda: now[0])
        for store in (first, second)
    ]
    for attempt in range(5):
        throttles[attempt % 2].begin("ann", "10.0.0.1")
    for throttle in throttles:
        with pytest.raises(TooManyAttempts) as refused:
            throttle.begin("ann", "10.0.0.1")
        assert refused.value.retry_after_s == 5  # those in flight decide within seconds
    throttles[1].abandon("ann", "10.0.0.1")  # one ended without a verdict: a turn frees
    throttles[0].begin("ann", "10.0.0.1")
    for attempt in range(5):
        throttles[attempt % 2].failed("ann", "10.0.0.1")
    with pytest.raises(TooManyAttempts) as refused:
        throttles[1].begin("ann", "10.0.0.1")
    assert refused.value.retry_after_s == 60  # the five failures' pause
    now[0] += 121  # an attempt whose process died stops counting after 120 s
    throttles[0].begin("bo", "10.0.0.2")
    now[0] += 120
    for _ in range(5):
        throttles[1].begin("bo", "10.0.0.2")
    throttles[0].succeeded("bo", "10.0.0.2")
    held = first.sign_in_tallies(['["address", "10.0.0.2"]'])
    assert len(held['["address", "10.0.0.2"]'][4]) == 4  # the success ended one
    # a tally with an attempt in flight and no failure is not forgotten by another's failure
    now[0] += 3 * 86_400
    throttles[0].begin("cy", "10.0.0.6")
    throttles[1].failed("dee", "10.0.0.7")  # forgets the idle tallies
    kept = first.sign_in_tallies(['["address", "10.0.0.6"]', '["address", "10.0.0.2"]'])
    assert list(kept) == ['["address", "10.0.0.6"]']  # 10.0.0.2's were 3 days old
    assert kept['["address", "10.0.0.6"]'][4] == [now[0]]


def test_the_drop_folder_lock_is_held_by_one_process_at_a_time(store_at) -> None:
    from placeharm.store.postgres import DROP_FOLDER_LOCK

    first, second = store_at("shared"), store_at("shared")
    held = first.hold_lock(DROP_FOLDER_LOCK)
    assert held is not None and held()
    assert second.hold_lock(DROP_FOLDER_LOCK) is None  # the other process waits its turn
    first.close()  # the holder ends: the lock is free once its server process has ended
    taken: list[Callable[[], bool]] = []

    def take() -> bool:
        now = second.hold_lock(DROP_FOLDER_LOCK)
        taken.extend([now] if now is not None else [])
        return bool(taken)

    _until(take)  # closing a connection does not wait for the server process to end
    assert taken[0]()
    assert not held()


def test_stores_in_two_schemas_of_one_database_each_watch_their_own_drop_folder(
    store_at,
) -> None:
    """Advisory locks belong to the database: with a bare key, a store in another schema
    holding the watch would leave this store's drop folder unwatched."""
    from placeharm.store.postgres import DROP_FOLDER_LOCK

    one, other = store_at("one"), store_at("other")
    held = one.hold_lock(DROP_FOLDER_LOCK)
    assert held is not None and held()
    mine = other.hold_lock(DROP_FOLDER_LOCK)
    assert mine is not None and mine()
    assert store_at("one").hold_lock(DROP_FOLDER_LOCK) is None  # the same store waits


def _backends(url: str) -> set[int]:
    with psycopg.connect(url, autocommit=True) as con:
        rows = con.execute("SELECT pid FROM pg_stat_activity").fetchall()
    return {int(r[0]) for r in rows}


def test_connections_of_ended_threads_are_closed(store_at) -> None:
    """The web server's thread pool stops idle threads and starts new ones: each new thread
    opens a connection, so those of ended threads must be closed, or a worker under bursty
    load runs the server out of connections ("too many clients already")."""
    store = store_at("threads")
    before = store.open_connections()
    ended: list[int] = []  # the server process (pid) behind each ended thread's connection

    def one_read(pids: list[int]) -> None:
        assert store.schema_version() > 0
        pids.append(store._con.info.backend_pid)

    for _ in range(3):  # three waves of 8 short-lived threads
        wave = [threading.Thread(target=one_read, args=(ended,)) for _ in range(8)]
        for thread in wave:
            thread.start()
        for thread in wave:
            thread.join()
    assert len(set(ended)) == 24  # each thread had a connection of its own
    kept: list[int] = []
    last = threading.Thread(target=one_read, args=(kept,))  # its connection closes the others
    last.start()
    last.join()
    # the last thread's own connection stays until another is made or the store closes
    assert store.open_connections() == before + 1
    _until(lambda: not set(ended) & _backends(store._url))  # gone on the server too
    assert set(kept) <= _backends(store._url)
    store.close()
    assert store.open_connections() == 0


def test_a_lost_notice_is_made_good_by_the_generation_max_age(
    store_at, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LISTEN connection that died without a reset hears nothing: the generation kept in
    memory is read again after GENERATION_MAX_AGE_S, so pages are not stale for hours."""
    from placeharm.store import postgres

    monkeypatch.setattr(postgres, "GENERATION_MAX_AGE_S", 0.5)
    store = store_at("lost-notice")
    stop = store.listen(lambda: None)
    try:
        _until(lambda: store._live_listens > 0)
        before = store.generation
        assert store.generation == before  # kept in memory while listening
        with psycopg.connect(store._url, autocommit=True) as con:  # a commit with no notice
            con.execute("UPDATE store_generation SET generation = generation + 1 WHERE id = 1")
        _until(lambda: store.generation == before + 1, seconds=10)
    finally:
        stop()


def test_a_role_with_select_rights_only_reads_read_only_and_is_told_what_to_do(
    db_at, pg_url: str, northumbria: Path, monkeypatch, capsys
) -> None:
    """A read-only deployment's role (SELECT on the store's tables, nothing else): with the
    read_only setting its queries answer; without it the store's first write (the migration
    check) is refused by the server, and the message says what to do, never "an unexpected
    failure" (found trying the docs' SELECT-only role)."""
    from urllib.parse import urlsplit, urlunsplit

    from placeharm.cli.main import main
    from placeharm.errors import StoreError
    from placeharm.store import open_db

    place = db_at("readers")
    with open_db(place) as store:
        assert ingest(store, [northumbria / "2021-06-northumbria-street.csv.gz"])[0].ok
    (schema,) = psycopg.connect(place).execute("SELECT current_schema()").fetchone() or ("",)
    role = f"reader_{schema}"
    with psycopg.connect(pg_url, autocommit=True) as con:
        con.execute(f"CREATE ROLE {role} LOGIN")
        con.execute(f"GRANT USAGE ON SCHEMA {schema} TO {role}")
        con.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {role}")
    parts = urlsplit(place)
    reader = urlunsplit(parts._replace(netloc=parts.netloc.replace("postgres@", f"{role}@")))
    try:
        with pytest.raises(StoreError) as refused:
            open_db(reader)
        message = str(refused.value)
        assert "permission denied" in message and "turn the read_only setting on" in message
        with open_db(reader, read_only=True) as store:
            assert store.table_counts()["crimes"] > 0
        monkeypatch.setenv("PLACEHARM_READ_ONLY", "true")
        monkeypatch.setattr("sys.argv", ["placeharm", "coverage", "--db", reader])
        with pytest.raises(SystemExit) as ended:
            main()
        assert ended.value.code in (0, None), capsys.readouterr().err
        assert "2021-06" in capsys.readouterr().out
    finally:
        with psycopg.connect(pg_url, autocommit=True) as con:
            con.execute(f"DROP OWNED BY {role}")
            con.execute(f"DROP ROLE {role}")
