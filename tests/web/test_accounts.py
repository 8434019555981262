"""Accounts (issue 12): disabling, role and password changes end sessions at once; idle
timeout and absolute lifetime at the exact instant; the sign-in throttle per address and per
(username, address); demo accounts end once a store holds a force's own records.

Every test that changes users or sessions works on its own copy of the demo store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from placeharm import open_store
from placeharm.audit import Actor
from placeharm.audit import verify as audit_verify
from placeharm.config import load_settings
from placeharm.errors import DataError, PermissionDenied
from placeharm.services import auth
from placeharm.soc.importer import import_entity
from placeharm.store.duckdb import SOC_TABLES, DuckDBStore
from placeharm.store.postgres import PostgresStore
from placeharm.web.app import create_app

from .conftest import csrf_headers, login_token, origin, post_login, purposes_of

T0 = dt.datetime(2026, 3, 2, 9, 0, 0)
SECOND = dt.timedelta(seconds=1)
MINUTE = dt.timedelta(minutes=1)
REAL_INTEL = (
    "intel_id,reported_date,source_evaluation,intelligence_assessment,handling_code,"
    "latitude,longitude\nREAL-I1,2022-01-10,1,A,P,54.97,-1.61\n"
)


class Clock:
    """A settable clock: what the app takes for now (naive UTC)."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> None:
        self.now += by


@pytest.fixture()
def own_db(own_demo: Callable[[], str]) -> str:
    """A fresh copy of the demo store on the engine under test, with a force account."""
    db = own_demo()
    with open_store(db) as store:
        auth.create_user(store, "pc7", "PC, Westgate", "officer", "kettle-lantern-moorland")
    return db


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def app(own_db: str, clock: Clock) -> Iterator[TestClient]:
    application = create_app(load_settings(db=own_db), clock=clock)
    with TestClient(application) as client:
        yield client


def _client(app: TestClient, address: str = "198.51.100.1") -> TestClient:
    """Another browser on the same server, from `address`."""
    return TestClient(app.app, client=(address, 50000))


def _sign_in(client: TestClient, username: str, password: str | None = None) -> TestClient:
    password = password or username + auth.DEMO_PASSWORD_SUFFIX
    response = post_login(client, username, password)
    assert response.status_code == 303 and "error" not in response.headers["location"], (
        response.status_code,
        response.headers.get("location"),
    )
    assert client.cookies.get("placeharm_session")
    client.headers.update(csrf_headers(client))  # as our pages' forms and scripts send it
    for purpose in purposes_of(client, username):  # as a user would on the justification form
        stated = client.post(
            "/api/justification",
            data={"purpose": purpose, "reason": "investigation", "text": "accounts test"},
        )
        assert stated.status_code == 200, stated.text
    return client


def _refused_sign_in(client: TestClient, username: str, password: str) -> bool:
    response = post_login(client, username, password)
    return response.status_code == 303 and "error=1" in response.headers["location"]


def _store(app: TestClient) -> DuckDBStore | PostgresStore:
    store = app.app.state.placeharm.store  # type: ignore[attr-defined]
    assert isinstance(store, DuckDBStore | PostgresStore)
    return store


def _sessions(app: TestClient, username: str) -> int:
    return int(_store(app).users().filter(username=username)["sessions"][0])


# -- disable, enable, role and password changes -----------------------------------------------


@pytest.mark.both_engines  # issue 17
def test_disabling_ends_every_session_at_once_and_enabling_restores_sign_in(app: TestClient):
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    officer = _sign_in(_client(app, "198.51.100.2"), "officer")
    second = _sign_in(_client(app, "198.51.100.3"), "officer")  # another browser
    for client in (officer, second):
        assert client.get("/api/overview").status_code == 200  # remembered in memory now
    assert _sessions(app, "officer") == 2
    done = admin.post("/admin/users/officer/disable")
    assert done.status_code == 200 and done.json()["sessions_ended"] == 2
    # no time passes: the next request of either browser is refused, not in a minute
    for client in (officer, second):
        assert client.get("/api/overview").status_code == 403
        page = client.get("/overview", headers={"Accept": "text/html"}, follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert _sessions(app, "officer") == 0
    record = _store(app).user("officer")
    assert record is not None and record["disabled"] and record["disabled_at"] is not None
    assert _refused_sign_in(_client(app), "officer", "officer" + auth.DEMO_PASSWORD_SUFFIX)
    assert admin.post("/admin/users/officer/enable").json()["sessions_ended"] == 0
    again = _sign_in(_client(app), "officer")
    assert again.get("/api/overview").status_code == 200
    assert officer.get("/api/overview").status_code == 403  # old sessions stay ended


def test_role_change_ends_sessions_and_the_new_role_applies(app: TestClient):
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    analyst = _sign_in(_client(app, "198.51.100.2"), "analyst")
    assert analyst.get("/api/records?kind=nominals&page_size=1").status_code == 200
    done = admin.post("/admin/users/analyst/role", data={"role": "partner"})
    assert done.status_code == 200 and done.json()["sessions_ended"] == 1
    assert analyst.get("/api/records?kind=nominals&page_size=1").status_code == 403
    assert analyst.get("/api/overview").status_code == 403  # signed out, not just narrowed
    partner = _sign_in(_client(app, "198.51.100.3"), "analyst")
    assert partner.get("/api/records?kind=nominals&page_size=1").status_code == 403
    assert partner.get("/api/overview?by=ward").status_code == 200
    bad = admin.post("/admin/users/analyst/role", data={"role": "sheriff"})
    assert bad.status_code == 400 and "unknown role" in bad.json()["error"]


def test_password_change_ends_sessions_and_weak_passwords_are_refused(app: TestClient):
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    pc = _sign_in(_client(app, "198.51.100.2"), "pc7", "kettle-lantern-moorland")
    assert pc.get("/api/overview").status_code == 200
    weak = admin.post("/admin/users/pc7/password", data={"password": "password1234"})
    assert weak.status_code == 400 and "too easy to guess" in weak.json()["error"]
    assert pc.get("/api/overview").status_code == 200  # a refused change ends nothing
    done = admin.post("/admin/users/pc7/password", data={"password": "orchard-pylon-biscuit"})
    assert done.json()["sessions_ended"] == 1
    assert pc.get("/api/overview").status_code == 403
    assert _refused_sign_in(_client(app), "pc7", "kettle-lantern-moorland")
    _sign_in(_client(app), "pc7", "orchard-pylon-biscuit")
    record = _store(app).user("pc7")
    assert record is not None and record["password_changed_at"] is not None


def test_account_changes_are_for_admins_and_not_on_oneself(app: TestClient):
    officer = _sign_in(_client(app, "198.51.100.2"), "officer")
    assert officer.post("/admin/users/pc7/disable").status_code == 403
    assert _store(app).user("pc7")["disabled"] is False  # type: ignore[index]
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    assert admin.post("/admin/users/admin/disable").status_code == 403
    assert admin.post("/admin/users/admin/role", data={"role": "officer"}).status_code == 403
    assert admin.post("/admin/users/nobody/disable").status_code == 404
    assert admin.post("/admin/users/pc7/delete").status_code == 400
    assert admin.get("/api/overview").status_code == 200  # still signed in as admin


def test_admin_page_offers_the_account_actions_as_forms(app: TestClient):
    admin = _sign_in(_client(app), "admin")
    html = admin.get("/admin", headers={"Accept": "text/html"}).text
    assert 'action="/admin/users/officer/disable"' in html
    assert 'action="/admin/users/officer/role"' in html
    assert 'action="/admin/users/officer/password"' in html
    assert 'action="/admin/users/admin/disable"' not in html  # not on oneself
    done = admin.post(
        "/admin/users/officer/disable", headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/admin?done=disable")
    page = admin.get(done.headers["location"], headers={"Accept": "text/html"}).text
    assert "Account officer disabled: its sessions have ended." in page
    assert 'action="/admin/users/officer/enable"' in page  # the page shows the new state


def test_idle_timeout_at_the_exact_instant(app: TestClient, clock: Clock):
    idle = dt.timedelta(minutes=30)
    a = _sign_in(_client(app, "198.51.100.1"), "officer")  # at T0
    b = _sign_in(_client(app, "198.51.100.2"), "officer")  # at T0
    clock.now = T0 + idle - SECOND
    assert a.get("/api/overview").status_code == 200  # one second before: valid
    clock.now = T0 + idle
    assert b.get("/api/overview").status_code == 403  # at the instant: refused
    # a's request at T0 + idle - 1 s restarted its idle time, counted from that request
    clock.now = T0 + 2 * idle - 2 * SECOND
    assert a.get("/api/overview").status_code == 200
    clock.now = T0 + 3 * idle - 2 * SECOND
    assert a.get("/api/overview").status_code == 403
    clock.now += dt.timedelta(hours=1)
    assert a.get("/api/overview").status_code == 403  # and after


def test_last_seen_is_written_at_most_once_a_minute_and_idle_counts_from_memory(
    app: TestClient, clock: Clock
):
    store = _store(app)
    client = _sign_in(_client(app), "officer")  # at T0
    token_hash = auth._token_hash(client.cookies["placeharm_session"])
    for seconds in (10, 30, 59):  # requests within the minute: answered without a write
        clock.now = T0 + seconds * SECOND
        assert client.get("/api/overview").status_code == 200
    assert store.session(token_hash)["last_seen_at"] == T0  # type: ignore[index]
    # the store's copy is 59 s behind; the idle time still counts from the last request
    clock.now = T0 + 59 * SECOND + dt.timedelta(minutes=30) - SECOND
    assert client.get("/api/overview").status_code == 200
    assert store.session(token_hash)["last_seen_at"] == clock.now  # type: ignore[index]
    # a restarted server (a fresh memory) counts from the store's copy: at most a minute
    # behind the last request, so a session may end that much early, never late
    seen = clock.now
    clock.advance(10 * SECOND)
    assert client.get("/api/overview").status_code == 200  # remembered: no write
    restarted = auth.SessionCache(auth.SessionRules(), clock)
    token = client.cookies["placeharm_session"]
    lock = app.app.state.placeharm.write_lock  # type: ignore[attr-defined]
    clock.now = seen + dt.timedelta(minutes=30) - SECOND
    assert restarted.look_up(store, token, lock, activity=False) is not None
    clock.now = seen + dt.timedelta(minutes=30)
    assert restarted.look_up(store, token, lock, activity=False) is None
    assert client.get("/api/overview").status_code == 200  # the running server: 10 s left


def test_session_memory_is_bounded_and_a_lookup_racing_a_change_is_not_remembered(
    own_db: str, clock: Clock
):
    import threading

    lock = threading.RLock()
    with open_store(own_db) as store:
        tokens = [auth.start_session(store, "officer", T0) for _ in range(5)]
        cache = auth.SessionCache(auth.SessionRules(), clock, max_entries=2)
        for token in tokens:
            assert cache.look_up(store, token, lock) is not None
        assert len(cache) == 2
        assert cache.remembered(tokens[-1]) is not None  # the most recent are kept
        # a look-up that read the store before an account change must not remember it
        racing = auth.SessionCache(auth.SessionRules(), clock)
        real_session = store.session

        def read_then_change(token_hash: str) -> dict[str, object] | None:
            found = real_session(token_hash)
            racing.forget_user("officer")  # the change lands between the read and the save
            return found

        store.session = read_then_change  # type: ignore[method-assign]
        assert racing.look_up(store, tokens[0], lock) is not None  # (read before the change)
        assert len(racing) == 0 and racing.remembered(tokens[0]) is None


def test_absolute_lifetime_at_the_exact_instant(own_db: str, clock: Clock):
    settings = load_settings(db=own_db, session_max_hours=1, session_idle_minutes=30)
    with TestClient(create_app(settings, clock=clock)) as app:
        client = _client(app)
        response = post_login(client, "officer", "officer" + auth.DEMO_PASSWORD_SUFFIX)
        assert "max-age=3600" in response.headers["set-cookie"].lower()
        for minutes in (20, 40):  # kept active: the idle timeout never falls due
            clock.now = T0 + minutes * MINUTE
            assert client.get("/api/overview").status_code == 200
        clock.now = T0 + dt.timedelta(hours=1) - SECOND
        assert client.get("/api/overview").status_code == 200
        clock.now = T0 + dt.timedelta(hours=1)
        assert client.get("/api/overview").status_code == 403
        clock.now += SECOND
        assert client.get("/api/overview").status_code == 403


def test_session_rules_come_from_settings():
    rules = auth.SessionRules.from_settings(
        load_settings(session_idle_minutes=5, session_max_hours=2)
    )
    session = {"created_at": T0, "expires_at": T0 + dt.timedelta(hours=10), "last_seen_at": T0}
    assert rules.ends_at(session) == T0 + dt.timedelta(minutes=5)
    assert rules.ends_at(session, last_seen=T0 + dt.timedelta(hours=3)) == T0 + dt.timedelta(
        hours=2
    )


# -- throttling ---------------------------------------------------------------------------------


def test_spraying_usernames_from_one_address_is_throttled(app: TestClient, clock: Clock):
    sprayer = _client(app, "203.0.113.9")
    statuses = []
    for i in range(20):
        response = post_login(sprayer, f"user{i}", "Winter2026!!")
        statuses.append(response.status_code)
    assert statuses[:10] == [303] * 10  # wrong passwords, counted
    assert statuses[10:] == [429] * 10  # then the address is paused
    # even a right password from that address waits, and the login page says for how long
    page = sprayer.post(
        "/login",
        data={
            "username": "officer",
            "password": "officer" + auth.DEMO_PASSWORD_SUFFIX,
            "csrf_token": login_token(sprayer),
        },
        headers={"Accept": "text/html", "Origin": origin(sprayer)},
        follow_redirects=False,
    )
    assert page.status_code == 429 and page.headers["retry-after"] == "60"
    assert "Too many sign-in attempts: try again in 1 minute." in page.text
    assert "placeharm_session" not in page.cookies
    # each attempt is in the audit log, as failed or as throttled (never the password)
    logged = [
        (e["username"], e["outcome"])
        for e in _store(app).audit_entries()
        if e["action"] == "sign-in" and e["client_address"] == "203.0.113.9"
    ]
    assert logged == [(f"user{i}", "failed") for i in range(10)] + [
        (f"user{i}", "throttled") for i in range(10, 20)
    ] + [("officer", "throttled")]
    # the same users from another address are not affected
    _sign_in(_client(app, "198.51.100.7"), "officer")
    # the pause ends after a minute
    clock.advance(MINUTE)
    _sign_in(sprayer, "officer")


def test_a_named_user_cannot_be_locked_out_from_other_addresses(app: TestClient, clock: Clock):
    attacker = _client(app, "203.0.113.20")
    for _ in range(5):
        assert _refused_sign_in(attacker, "pc7", "guess-guess-guess")
    blocked = post_login(attacker, "pc7", "kettle-lantern-moorland")
    assert blocked.status_code == 429
    assert "try again in 1 minute" in blocked.json()["error"]
    _sign_in(_client(app, "198.51.100.8"), "pc7", "kettle-lantern-moorland")  # the real user
    assert _refused_sign_in(attacker, "officer", "guess-guess-guess")  # only that pair paused
    # lock-outs grow for the offender only, and each one ends: 1 min, then 2 min (after 15
    # minutes, when the address's own failures have left the window)
    clock.advance(15 * MINUTE)
    for _ in range(5):
        assert _refused_sign_in(attacker, "pc7", "guess-guess-guess")
    clock.advance(2 * MINUTE - SECOND)
    assert post_login(attacker, "pc7", "x").status_code == 429
    clock.advance(SECOND)
    _sign_in(attacker, "pc7", "kettle-lantern-moorland")


def test_throttle_backoff_is_bounded_and_per_address():
    now = [0.0]
    throttle = auth.LoginThrottle(
        per_account=2, per_address=4, lockout_s=60, max_lockout_s=300, clock=lambda: now[0]
    )
    pauses = []
    for _ in range(6):
        throttle.failed("a", "203.0.113.1")
        throttle.failed("a", "203.0.113.1")
        with pytest.raises(auth.TooManyAttempts) as refused:
            throttle.check("a", "203.0.113.1")
        pauses.append(refused.value.retry_after_s)
        throttle.check("a", "203.0.113.2")  # another address: never paused
        now[0] += refused.value.retry_after_s
        throttle.check("a", "203.0.113.1")  # every pause ends
    assert pauses == [60, 120, 240, 300, 300, 300]
    # IPv6 addresses count by their /64: a host cannot dodge by changing its low bits
    for i in range(4):
        throttle.failed(f"n{i}", f"2001:db8:0:1::{i + 1}")
    with pytest.raises(auth.TooManyAttempts):
        throttle.check("z", "2001:db8:0:1::ffff")
    throttle.check("z", "2001:db8:0:2::1")


# -- password rules -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short", "at least 12 characters"),
        ("password1234", "too easy to guess"),
        ("qwertyuiop123", "too easy to guess"),
        ("Liverpool2026!", "too easy to guess"),
        ("Football1234", "too easy to guess"),
        ("jsmith", "at least 12 characters"),
        ("jsmithjsmith", "contains the username"),
        ("JSmith-2026-xyz", "contains the username"),
        ("JohnSmith-9174", "contains the account's display name"),
        ("x" * 257, "at most 256"),
    ],
)
def test_password_deny_list(tmp_path: Path, store_at, password: str, why: str):
    with store_at("p") as store:
        with pytest.raises(DataError, match=why) as refused:
            auth.create_user(store, "jsmith", "John Smith", "officer", password)
        assert "use three or four unrelated words" in str(refused.value).lower() or why in (
            "at most 256"
        )
        assert store.user("jsmith") is None
        auth.create_user(store, "jsmith", "John Smith", "officer", "heron-quarry-velvet")
        assert store.user("jsmith") is not None


def test_demo_accounts_bypass_the_rules_explicitly_and_only_when_demo(tmp_path: Path, store_at):
    with store_at("d") as store:
        logins = auth.create_demo_users(store)
        assert logins["officer"] == "officer-demo-2026"
        assert all(store.user(name)["demo"] for name in logins)  # type: ignore[index]
        with pytest.raises(DataError, match="contains the username"):
            auth.create_user(store, "pc1", "PC", "officer", "pc1-demo-2026")
        with pytest.raises(DataError, match="contains the username"):
            auth.set_password(store, "officer", "officer-demo-2027", Actor.cli())  # demo or not
        token = auth.login(store, "officer", "officer-demo-2026")
        assert auth.user_for(store, token) is not None


# -- demo accounts and real records ------------------------------------------------------------


def test_demo_sessions_end_right_after_a_real_upload(app: TestClient):
    state = app.app.state.placeharm  # type: ignore[attr-defined]
    calls = []
    real_check = state.store.has_real_soc_records

    def counted() -> bool:
        calls.append(1)
        return bool(real_check())

    state.store.has_real_soc_records = counted
    analyst = _sign_in(_client(app, "198.51.100.2"), "analyst")
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    pc = _sign_in(_client(app, "198.51.100.3"), "pc7", "kettle-lantern-moorland")
    for _ in range(5):
        assert analyst.get("/api/overview").status_code == 200
    assert len(calls) <= 1  # the flag is remembered, not asked on every request
    # synthetic records change nothing
    synthetic = REAL_INTEL.replace("longitude\n", "longitude,synthetic\n").replace(
        "REAL-I1", "SYN-I1"
    )
    upload = admin.post(
        "/api/upload",
        data={"kind": "intelligence"},
        files={"file": ("s.csv", synthetic.replace("-1.61\n", "-1.61,true\n"))},
    )
    assert upload.status_code == 200 and upload.json()["results"][0]["inserted"] == 1
    assert analyst.get("/api/overview").status_code == 200
    # one real intelligence record: every demo session ends with the import
    upload = admin.post(
        "/api/upload", data={"kind": "intelligence"}, files={"file": ("i.csv", REAL_INTEL)}
    )
    assert upload.status_code == 200 and upload.json()["results"][0]["inserted"] == 1
    assert analyst.get("/api/overview").status_code == 403  # at once, not in a minute
    assert admin.get("/api/overview").status_code == 403
    assert pc.get("/api/overview").status_code == 200  # a force account carries on
    row = state.store._one("SELECT count(*) FROM sessions JOIN users USING (username) WHERE demo")
    assert row == (0,)
    assert _refused_sign_in(_client(app), "analyst", "analyst" + auth.DEMO_PASSWORD_SUFFIX)


def test_demo_sessions_end_after_a_real_import_through_the_service(own_db: str, tmp_path: Path):
    real = tmp_path / "intelligence.csv"
    real.write_text(REAL_INTEL)
    with open_store(own_db) as store:
        token = auth.login(store, "analyst", "analyst" + auth.DEMO_PASSWORD_SUFFIX)
        force = auth.login(store, "pc7", "kettle-lantern-moorland")
        assert auth.user_for(store, token) is not None
        assert import_entity(store, "intelligence", real).inserted == 1
        assert store.session(auth._token_hash(token)) is None  # ended in the import's commit
        assert auth.user_for(store, token) is None
        assert auth.user_for(store, force) is not None
        with pytest.raises(PermissionDenied, match="wrong username or password"):
            auth.login(store, "analyst", "analyst" + auth.DEMO_PASSWORD_SUFFIX)
    with TestClient(create_app(load_settings(db=own_db))) as app:  # a server started after
        assert _refused_sign_in(_client(app), "admin", "admin" + auth.DEMO_PASSWORD_SUFFIX)
        _sign_in(_client(app), "pc7", "kettle-lantern-moorland")


def test_a_real_row_in_any_soc_table_refuses_demo_accounts(own_db: str):
    with open_store(own_db) as store:
        assert not store.has_real_soc_records()
        tried = []
        for table in SOC_TABLES:
            if not store._one(f"SELECT count(*) FROM {table}")[0]:  # type: ignore[index]
                continue
            one = f"rowid = (SELECT min(rowid) FROM {table})"
            store._run(f"UPDATE {table} SET synthetic = FALSE WHERE {one}")
            assert store.has_real_soc_records(), table
            store._run(f"UPDATE {table} SET synthetic = TRUE WHERE {one}")
            assert not store.has_real_soc_records(), table
            tried.append(table)
        assert len(tried) >= 10, tried  # the demo overlay fills nearly every table


NEW = "quiet-harbour-lamplight-7"


@pytest.mark.both_engines  # issue 17
def test_account_changes_are_audited_as_alterations(app: TestClient):
    """Each admin-page change is an `alteration` entry naming the account and the admin,
    in the change's transaction; the new password is never in it."""
    admin = _sign_in(_client(app, "198.51.100.1"), "admin")
    assert admin.post("/admin/users/pc7/role", data={"role": "analyst"}).status_code == 200
    assert admin.post("/admin/users/pc7/password", data={"password": NEW}).status_code == 200
    entries, _ = _store(app).audit_search(None, "pc7", None, None, "alteration", 10)
    rows = entries.sort("seq").to_dicts()
    assert [r["route"] for r in rows] == ["users role", "users password"]
    assert {r["username"] for r in rows} == {"admin"}
    assert all(r["client_address"] == "198.51.100.1" for r in rows)
    assert '"analyst"' in rows[0]["query"] and NEW not in rows[1]["query"]
    assert audit_verify(_store(app)).problem is None
