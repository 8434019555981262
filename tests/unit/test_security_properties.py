"""Security properties pinned with hand-worked values (issue 19): the partners' location
grid, the area sets a partner may group by, spreadsheet formulas in CSV exports, a
session's expiry instant, and a signed-out session in the web server's memory.

Every expected value is written out here, never computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from placeharm import audit
from placeharm.config import Settings
from placeharm.errors import DataError, NotFound, PermissionDenied
from placeharm.services import auth, exports, policy
from placeharm.services.policy import Role, User
from placeharm.soc.importer import import_entity
from placeharm.store.duckdb import DuckDBStore

PARTNER = User("p", "Partner", Role.partner)
OTHERS = [User(r.value, r.value, r) for r in Role if r is not Role.partner]


# -- partners' locations: a 0.01-degree grid (about 1.1 km north-south in Newcastle) --------


def test_partner_locations_snap_to_the_hundredth_of_a_degree_grid():
    frame = pl.DataFrame(
        {
            "latitude": [54.97449, 54.97551, 54.9701, 54.9799, 55.0, -0.00451, -0.00551],
            "longitude": [-1.60449, -1.60551, -1.6001, -1.6099, 0.0, 0.00451, 0.00551],
        }
    )
    out = policy.shape_located(PARTNER, frame)
    # nearest multiple of 0.01 degrees: 54.97449 -> 54.97, 54.97551 -> 54.98, ...
    assert out["latitude"].to_list() == pytest.approx(
        [54.97, 54.98, 54.97, 54.98, 55.0, -0.0, -0.01], abs=1e-12
    )
    assert out["longitude"].to_list() == pytest.approx(
        [-1.60, -1.61, -1.60, -1.61, 0.0, 0.0, 0.01], abs=1e-12
    )
    # 0.0048 past a grid line is still nearer it (rounding once, to the grid, not in steps)
    edge = policy.shape_located(PARTNER, pl.DataFrame({"latitude": [54.9748, 54.9752]}))
    assert edge["latitude"].to_list() == [54.97, 54.98]
    # two points 0.0011 degrees apart, inside one cell, become the same point
    same = policy.shape_located(
        PARTNER, pl.DataFrame({"latitude": [54.9712, 54.9723], "longitude": [-1.6012, -1.6023]})
    )
    assert same.unique().height == 1


def test_partner_grid_is_about_a_kilometre_not_finer():
    # the setting the grid comes from (a change to it changes every partner's map)
    assert policy.GENERALISE_DEGREES == 0.01
    # points 0.004 degrees (about 440 m) either side of a cell centre all land on it
    frame = pl.DataFrame({"latitude": [54.966, 54.970, 54.974], "longitude": [-1.6] * 3})
    assert policy.shape_located(PARTNER, frame)["latitude"].to_list() == pytest.approx(
        [54.97] * 3, abs=1e-12
    )


def test_partner_rows_drop_unshareable_records_and_identifying_columns():
    frame = pl.DataFrame(
        {
            "id": ["i1", "i2", "i3"],
            "handling_code": ["P", "C", None],
            "latitude": [54.97449, 54.97449, 54.97449],
            "subjects": ["N1", "N2", "N3"],
            "summary": ["s", "s", "s"],
            "address": ["1 High St", "x", "y"],
            "location": ["On or near High St", "x", "y"],
        }
    )
    out = policy.shape_located(PARTNER, frame)
    assert out.columns == ["id", "handling_code", "latitude"]
    assert out.rows() == [("i1", "P", pytest.approx(54.97))]


@pytest.mark.parametrize("user", OTHERS, ids=lambda u: u.role.value)
def test_other_roles_see_exact_locations(user: User):
    frame = pl.DataFrame(
        {"latitude": [54.97449], "longitude": [-1.60551], "handling_code": ["C"], "summary": ["s"]}
    )
    assert policy.shape_located(user, frame).equals(frame)


@pytest.mark.parametrize("by", ["lsoa", "msoa", "chb", "patch", "ward_2013", "Ward", ""])
def test_partners_group_by_ward_only(by: str):
    policy.partner_area_set(PARTNER, "ward")  # allowed: returns without raising
    with pytest.raises(PermissionDenied, match=r"^partners see figures by ward only$"):
        policy.partner_area_set(PARTNER, by)


@pytest.mark.parametrize("user", OTHERS, ids=lambda u: u.role.value)
def test_other_roles_group_by_any_area_set(user: User):
    for by in ("lsoa", "msoa", "ward", "chb"):
        policy.partner_area_set(user, by)


def test_partners_cannot_sort_by_exact_coordinates():
    assert not policy.sortable(PARTNER, "latitude")
    assert not policy.sortable(PARTNER, "longitude")
    assert policy.sortable(PARTNER, "month")
    assert all(policy.sortable(u, c) for u in OTHERS for c in ("latitude", "longitude"))


# -- CSV exports: formulas never run in a spreadsheet ---------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=SUM(A1:A9)", "'=SUM(A1:A9)"),
        ("+44 191 000", "'+44 191 000"),
        ("-1+2", "'-1+2"),
        ("@cmd", "'@cmd"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("==", "'=="),  # only the first sign is quoted, once
        ("a=1", "a=1"),  # a sign after the first character is harmless
        (" =1", " =1"),  # a leading space is not stripped by spreadsheets
        ("'=1", "'=1"),  # already quoted
        ("Burglary", "Burglary"),
        ("", ""),
        ("\n=1", "\n=1"),  # a line feed is not in the OWASP list
        ("\uff1d1", "\uff1d1"),  # a full-width = is not handled (docs/testing.md)
    ],
)
def test_csv_cells_starting_with_a_formula_sign_are_quoted(cell: str, written: str):
    frame = pl.DataFrame({"text": [cell]})
    assert exports.neutralise_formulas(frame)["text"].to_list() == [written]


def test_csv_neutralising_leaves_numbers_and_nulls_alone():
    frame = pl.DataFrame(
        {"n": [-1, 2], "x": [-1.605, 54.9], "text": [None, "-x"]},
        schema={"n": pl.Int64, "x": pl.Float64, "text": pl.String},
    )
    out = exports.neutralise_formulas(frame)
    assert out["n"].to_list() == [-1, 2]
    assert out["x"].to_list() == [-1.605, 54.9]
    assert out["text"].to_list() == [None, "'-x"]
    assert out.schema == frame.schema


# -- sessions: the exact instant one ends -----------------------------------------------------

T0 = dt.datetime(2026, 3, 2, 8, 0, 0)
TICK = dt.timedelta(microseconds=1)
RULES = auth.SessionRules(idle=dt.timedelta(minutes=30), max_age=dt.timedelta(hours=10))


def _session(created: dt.datetime, seen: dt.datetime, expires: dt.datetime) -> dict:
    return {"created_at": created, "last_seen_at": seen, "expires_at": expires}


def test_session_ends_at_the_first_of_idle_lifetime_and_stored_expiry():
    eight_thirty = dt.datetime(2026, 3, 2, 8, 30)
    # idle: 30 minutes after the last request at 08:00
    assert RULES.ends_at(_session(T0, T0, T0 + dt.timedelta(hours=10))) == eight_thirty
    # a later request known only in memory (09:00) counts from then: 09:30
    assert RULES.ends_at(
        _session(T0, T0, T0 + dt.timedelta(hours=10)), dt.datetime(2026, 3, 2, 9)
    ) == dt.datetime(2026, 3, 2, 9, 30)
    # an earlier one in memory does not pull the store's 08:00 back
    assert (
        RULES.ends_at(_session(T0, T0, T0 + dt.timedelta(hours=10)), T0 - dt.timedelta(hours=1))
        == eight_thirty
    )
    # active until 17:45: the 10-hour lifetime (18:00) ends it, not idle (18:15)
    late = dt.datetime(2026, 3, 2, 17, 45)
    assert RULES.ends_at(_session(T0, late, T0 + dt.timedelta(hours=12))) == dt.datetime(
        2026, 3, 2, 18
    )
    # the stored expiry (set at sign-in with older, shorter rules) when it is earlier
    noon = dt.datetime(2026, 3, 2, 12)
    assert RULES.ends_at(_session(T0, dt.datetime(2026, 3, 2, 11, 50), noon)) == noon
    # the defaults: 30 minutes idle, one 10-hour shift
    assert auth.DEFAULT_RULES.idle == dt.timedelta(minutes=30)
    assert auth.DEFAULT_RULES.max_age == dt.timedelta(hours=10)


@pytest.fixture
def accounts(store_at) -> Iterator[DuckDBStore]:
    with store_at("auth") as store:
        # no password: sessions are started directly (the hash is never checked here)
        store.upsert_user("ana", "Ana Analyst", "analyst", auth.NO_PASSWORD, False)
        yield store


def test_idle_expiry_instant(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    end = dt.datetime(2026, 3, 2, 8, 30)  # 08:00 + 30 minutes idle
    assert auth.user_for(accounts, token, end - TICK, RULES) == User(
        "ana", "Ana Analyst", Role.analyst
    )
    assert auth.user_for(accounts, token, end, RULES) is None
    assert auth.user_for(accounts, token, end + TICK, RULES) is None
    # a look-up is not activity: the session did not move on
    assert auth.user_for(accounts, token, end - TICK, RULES) is not None


def test_absolute_lifetime_instant_however_active(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    # a request every 20 minutes from 08:20 to 17:40 keeps it from idling
    for minutes in range(20, 10 * 60, 20):
        auth.touch(accounts, token, T0 + dt.timedelta(minutes=minutes))
    end = dt.datetime(2026, 3, 2, 18, 0)  # 08:00 + 10 hours
    assert auth.user_for(accounts, token, end - TICK, RULES) is not None
    assert auth.user_for(accounts, token, end, RULES) is None
    assert auth.user_for(accounts, token, end + dt.timedelta(minutes=1), RULES) is None


def test_start_session_stores_the_lifetime_from_sign_in(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    held = accounts.session(auth._token_hash(token))
    assert held is not None
    assert held["created_at"] == T0
    assert held["expires_at"] == dt.datetime(2026, 3, 2, 18, 0)
    # even with a longer lifetime in force later, the stored expiry still ends it
    longer = auth.SessionRules(idle=dt.timedelta(hours=24), max_age=dt.timedelta(hours=48))
    auth.touch(accounts, token, dt.datetime(2026, 3, 2, 17, 59))
    assert auth.user_for(accounts, token, dt.datetime(2026, 3, 2, 18) - TICK, longer)
    assert auth.user_for(accounts, token, dt.datetime(2026, 3, 2, 18), longer) is None


def test_a_signed_out_token_is_refused_by_the_store_at_once(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    auth.logout(accounts, token)
    assert auth.user_for(accounts, token, T0 + TICK, RULES) is None
    assert accounts.session(auth._token_hash(token)) is None


class _Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_the_cache_forgets_a_signed_out_token_at_once(accounts: DuckDBStore):
    clock = _Clock(T0)
    cache = auth.SessionCache(RULES, clock, recheck_s=60)
    lock = threading.Lock()
    token = auth.start_session(accounts, "ana", T0, RULES)
    assert cache.look_up(accounts, token, lock) is not None
    clock.now = T0 + dt.timedelta(seconds=1)
    assert cache.remembered(token) is not None  # answered from memory
    # signing out (web/app.py's /logout): the store first, then the cache
    auth.logout(accounts, token)
    cache.forget(token)
    assert cache.remembered(token) is None  # reused at once: not from memory
    assert cache.look_up(accounts, token, lock) is None  # and the store refuses it
    assert len(cache) == 0
    clock.now = T0 + dt.timedelta(seconds=61)  # after the re-check too
    assert cache.remembered(token) is None
    assert cache.look_up(accounts, token, lock) is None


def test_a_session_ended_elsewhere_is_refused_from_the_recheck(accounts: DuckDBStore):
    # ended in the store by another process (not this cache): this process may answer
    # from memory until `recheck_s` after it last asked the store, never later
    clock = _Clock(T0)
    cache = auth.SessionCache(RULES, clock, recheck_s=60)
    lock = threading.Lock()
    token = auth.start_session(accounts, "ana", T0, RULES)
    assert cache.look_up(accounts, token, lock) is not None  # asked at 08:00:00
    auth.logout(accounts, token)
    clock.now = T0 + dt.timedelta(seconds=60) - TICK
    assert cache.remembered(token) is not None  # inside the documented window
    clock.now = T0 + dt.timedelta(seconds=60)  # the re-check instant
    assert cache.remembered(token) is None
    assert cache.look_up(accounts, token, lock) is None
    assert len(cache) == 0


def test_the_cache_ends_a_session_at_its_idle_instant(accounts: DuckDBStore):
    # the store was asked at 08:00 with no activity: idle counts from sign-in, 08:30
    clock = _Clock(T0)
    cache = auth.SessionCache(RULES, clock, recheck_s=3600)  # memory alone decides
    lock = threading.Lock()
    token = auth.start_session(accounts, "ana", T0, RULES)
    assert cache.look_up(accounts, token, lock, activity=False) is not None
    clock.now = dt.datetime(2026, 3, 2, 8, 30)
    fresh = auth.SessionCache(RULES, clock, recheck_s=3600)
    assert fresh.look_up(accounts, token, lock) is None  # the store agrees: ended at 08:30
    clock.now = dt.datetime(2026, 3, 2, 8, 30) - TICK
    assert cache.remembered(token) is not None  # a request at 08:29:59.999999 ...
    # ... so the next request may come up to 30 minutes later, not at 30 minutes
    clock.now = dt.datetime(2026, 3, 2, 8, 59, 59, 999_999)
    assert cache.remembered(token) is None
    assert len(cache) == 0


def test_the_cache_ends_a_session_at_its_lifetime_instant(accounts: DuckDBStore):
    clock = _Clock(dt.datetime(2026, 3, 2, 17, 50))
    cache = auth.SessionCache(RULES, clock, recheck_s=3600)
    lock = threading.Lock()
    token = auth.start_session(accounts, "ana", T0, RULES)
    auth.touch(accounts, token, dt.datetime(2026, 3, 2, 17, 45))
    assert cache.look_up(accounts, token, lock) is not None
    clock.now = dt.datetime(2026, 3, 2, 18) - TICK
    assert cache.remembered(token) is not None
    clock.now = dt.datetime(2026, 3, 2, 18)
    assert cache.remembered(token) is None


class _ForgetWhileLooking:
    """A write lock whose turn comes while a look-up is between reading the store and
    remembering what it read: a sign-out happens at that moment (the race `_epoch` closes)."""

    def __init__(self, cache: auth.SessionCache, token: str) -> None:
        self.cache, self.token = cache, token

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.cache.forget(self.token)
        return False  # busy: the look-up does not write

    def release(self) -> None:  # never acquired
        raise AssertionError("released a lock it did not hold")


def test_a_look_up_racing_a_sign_out_does_not_remember_the_session(accounts: DuckDBStore):
    clock = _Clock(T0 + dt.timedelta(minutes=5))  # the store's copy is 5 minutes old
    cache = auth.SessionCache(RULES, clock, recheck_s=60)
    token = auth.start_session(accounts, "ana", T0, RULES)
    other = auth.start_session(accounts, "ana", T0, RULES)
    cache.forget(other)  # the epoch has moved before: only a move during the look-up counts
    # the look-up read a live session, but the sign-out came before it could remember it
    assert cache.look_up(accounts, token, _ForgetWhileLooking(cache, token)) is not None
    assert cache.remembered(token) is None
    assert len(cache) == 0
    # without a sign-out in between it is remembered
    assert cache.look_up(accounts, token, threading.Lock()) is not None
    assert cache.remembered(token) is not None


def test_forgetting_a_user_drops_only_their_sessions(accounts: DuckDBStore):
    accounts.upsert_user("bob", "Bob Officer", "officer", auth.NO_PASSWORD, False)
    cache = auth.SessionCache(RULES, _Clock(T0), recheck_s=60)
    lock = threading.Lock()
    tokens = [auth.start_session(accounts, name, T0, RULES) for name in ("ana", "ana", "bob")]
    for token in tokens:
        assert cache.look_up(accounts, token, lock) is not None
    assert cache.forget_user("ana") == 2
    assert [cache.remembered(t) is not None for t in tokens] == [False, False, True]
    assert cache.forget_user("nobody") == 0


# -- account changes end sessions (services/auth.py) ------------------------------------------

ADMIN = User("root", "Root Admin", Role.admin)
VIA = audit.Actor("root", "admin", "192.0.2.1")
STRONG = "cobalt-harbour-lantern-9431"


def _live(store: DuckDBStore, token: str) -> bool:
    return auth.user_for(store, token, T0 + dt.timedelta(minutes=1), RULES) is not None


def test_disabling_an_account_ends_its_sessions(accounts: DuckDBStore):
    tokens = [auth.start_session(accounts, "ana", T0, RULES) for _ in range(2)]
    assert auth.change_account(accounts, ADMIN, "ana", "disable", "", VIA) == 2
    assert accounts.user("ana")["disabled"]
    assert not any(_live(accounts, t) for t in tokens)
    assert auth.change_account(accounts, ADMIN, "ana", "enable", "", VIA) == 0
    assert not accounts.user("ana")["disabled"]
    assert not any(_live(accounts, t) for t in tokens)  # old sessions stay ended
    assert _live(accounts, auth.start_session(accounts, "ana", T0, RULES))
    changes, total = audit.log_for(accounts).search(accounts, username="root", action="alteration")
    assert total == 2
    assert changes.select("route", "record_ids", "query").rows() == [
        ("users enable", '{"user":["ana"]}', "{}"),
        ("users disable", '{"user":["ana"]}', '{"sessions_ended":2}'),
    ]


def test_a_role_or_password_change_ends_sessions(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    assert auth.change_account(accounts, ADMIN, "ana", "role", "officer", VIA) == 1
    assert accounts.user("ana")["role"] == "officer"
    assert not _live(accounts, token)
    with pytest.raises(
        DataError,
        match=(
            r"^unknown role 'chief'; use one of: officer, analyst, supervisor, senior_leader, "
            r"partner, admin, auditor$"
        ),
    ):
        auth.change_account(accounts, ADMIN, "ana", "role", "chief", VIA)
    token = auth.start_session(accounts, "ana", T0, RULES)
    assert auth.change_account(accounts, ADMIN, "ana", "password", STRONG, VIA) == 1
    assert not _live(accounts, token)
    auth.check_password(accounts.user("ana"), STRONG, real_data=False)  # the new one works
    with pytest.raises(DataError):
        auth.change_account(accounts, ADMIN, "ana", "password", "short", VIA)


def test_account_changes_are_refused_when_they_should_be(accounts: DuckDBStore):
    with pytest.raises(PermissionDenied) as refused:
        auth.change_account(accounts, User("s", "S", Role.supervisor), "ana", "enable", "", VIA)
    assert str(refused.value) == "only an administrator can change accounts"
    with pytest.raises(DataError) as refused:
        auth.change_account(accounts, ADMIN, "ana", "delete", "", VIA)
    assert str(refused.value) == (
        "unknown account action 'delete'; use one of disable, enable, role, password"
    )
    # a password holding the username is refused (the display name here is unrelated)
    accounts.upsert_user("qwx", "Pat Smith", "officer", auth.NO_PASSWORD, False)
    with pytest.raises(DataError, match="contains the username"):
        auth.change_account(accounts, ADMIN, "qwx", "password", "qwx-cobalt-harbour-9431", VIA)
    with pytest.raises(DataError, match="contains the account's display name"):
        auth.change_account(accounts, ADMIN, "qwx", "password", "Pat-Smith-cobalt-9431", VIA)
    own = (
        "you cannot disable your own account or change your own role: ask another "
        "administrator to do it"
    )
    for action in ("disable", "role"):
        with pytest.raises(PermissionDenied) as refused:
            auth.change_account(accounts, ADMIN, "root", action, "officer", VIA)
        assert str(refused.value) == own
    for action, value in (("disable", ""), ("enable", ""), ("role", "officer")):
        with pytest.raises(
            NotFound, match=r"^no user 'nobody'; the accounts table on this page lists who exists$"
        ):
            auth.change_account(accounts, ADMIN, "nobody", action, value, VIA)
    with pytest.raises(
        NotFound, match=r"^no user 'nobody'; the accounts table on this page lists who exists$"
    ):
        auth.change_account(accounts, ADMIN, "nobody", "password", STRONG, VIA)
    assert not accounts.user("ana")["disabled"]


def test_a_request_moves_the_idle_instant_to_its_own_time(accounts: DuckDBStore):
    token = auth.start_session(accounts, "ana", T0, RULES)
    auth.touch(accounts, token, dt.datetime(2026, 3, 2, 8, 20))  # a request at 08:20
    end = dt.datetime(2026, 3, 2, 8, 50)  # 30 minutes after it
    assert auth.user_for(accounts, token, end - TICK, RULES) is not None
    assert auth.user_for(accounts, token, end, RULES) is None


def test_demo_sessions_end_when_the_store_holds_real_records(accounts: DuckDBStore, tmp_path: Path):
    accounts.upsert_user("demo", "Demo Analyst", "analyst", auth.NO_PASSWORD, True)
    demo = auth.start_session(accounts, "demo", T0, RULES)
    real = auth.start_session(accounts, "ana", T0, RULES)
    assert _live(accounts, demo) and _live(accounts, real)
    path = tmp_path / "nominals.csv"
    path.write_text("nominal_id,surname,forename\nN1,Real,Person\n")  # not synthetic
    import_entity(accounts, "nominals", path)
    assert not _live(accounts, demo)
    assert _live(accounts, real)
    # the import ended the demo session in the store; one started after it is refused too
    late = auth.start_session(accounts, "demo", T0, RULES)
    assert accounts.session(auth._token_hash(late)) is not None
    assert not _live(accounts, late)


def test_account_changes_are_stamped_logged_and_audited(
    accounts: DuckDBStore, caplog: pytest.LogCaptureFixture
):
    auth.start_session(accounts, "ana", T0, RULES)
    caplog.set_level("WARNING", logger="placeharm.services.auth")
    assert auth.disable_user(accounts, "ana", VIA, now=T0) == 1
    assert accounts.user("ana")["disabled_at"] == T0
    auth.enable_user(accounts, "ana", VIA)
    assert accounts.user("ana")["disabled_at"] is None
    assert auth.set_role(accounts, "ana", "supervisor", VIA) == 0
    assert auth.set_password(accounts, "ana", STRONG, VIA, now=T0) == 0
    assert accounts.user("ana")["password_changed_at"] == T0
    # the operator's log says which account and what happened (never the password)
    assert [r.getMessage() for r in caplog.records] == [
        "account ana disabled; 1 sessions ended",
        "account ana enabled",
        "account ana role set to supervisor; 0 sessions ended",
        "account ana password set; 0 sessions ended",
    ]
    changes, _ = audit.log_for(accounts).search(accounts, action="alteration", limit=4)
    assert set(changes["username"]) == {"root"} and set(changes["page"]) == {"user"}
    assert set(changes["record_ids"]) == {'{"user":["ana"]}'}
    assert changes.select("route", "query").rows() == [
        ("users password", '{"sessions_ended":0}'),
        ("users role", '{"role":"supervisor","sessions_ended":0}'),
        ("users enable", "{}"),
        ("users disable", '{"sessions_ended":1}'),
    ]
    assert STRONG not in caplog.text


def test_a_look_up_racing_an_account_change_does_not_remember_it(accounts: DuckDBStore):
    cache = auth.SessionCache(RULES, _Clock(T0 + dt.timedelta(minutes=5)), recheck_s=60)
    token = auth.start_session(accounts, "ana", T0, RULES)
    cache.forget_user("nobody")
    cache.forget_user("nobody")  # the epoch has moved twice before

    class _ChangeWhileLooking(_ForgetWhileLooking):
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            self.cache.forget_user("ana")
            return False

    assert cache.look_up(accounts, token, _ChangeWhileLooking(cache, token)) is not None
    assert cache.remembered(token) is None


def test_real_records_end_demo_sessions_in_the_store_and_in_memory(
    accounts: DuckDBStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    accounts.upsert_user("demo", "Demo Analyst", "analyst", auth.NO_PASSWORD, True)
    cache = auth.SessionCache(RULES, _Clock(T0 + dt.timedelta(minutes=1)), recheck_s=3600)
    lock = threading.Lock()
    demo = auth.start_session(accounts, "demo", T0, RULES)
    real = auth.start_session(accounts, "ana", T0, RULES)
    assert cache.look_up(accounts, demo, lock) is not None
    assert cache.look_up(accounts, real, lock) is not None
    assert cache.data_changed(accounts) == 0  # still only synthetic records: nothing ends
    assert cache.remembered(demo) is not None
    path = tmp_path / "nominals.csv"
    path.write_text("nominal_id,surname,forename\nN1,Real,Person\n")
    import_entity(accounts, "nominals", path)
    assert cache.remembered(demo) is not None  # memory does not know yet ...
    caplog.set_level("WARNING", logger="placeharm.services.auth")
    assert cache.data_changed(accounts) == 1  # ... until the import says so
    assert cache.remembered(demo) is None
    assert cache.remembered(real) is not None
    # the import itself ended the demo session in the store (soc/importer.py), so this
    # process has nothing more to end there and logs nothing
    assert accounts.session(auth._token_hash(demo)) is None
    assert accounts.session(auth._token_hash(real)) is not None
    assert cache.real_data(accounts) is True
    assert caplog.records == []
    # a demo session started on a store with real records is ended by the next check
    late = auth.start_session(accounts, "demo", T0, RULES)
    assert cache.data_changed(accounts) == 0  # none in memory
    assert accounts.session(auth._token_hash(late)) is None
    assert [r.getMessage() for r in caplog.records] == [
        "real SOC records imported: 1 demo sessions ended"
    ]


def test_an_administrators_change_is_logged_with_who_what_and_whom(
    accounts: DuckDBStore, caplog: pytest.LogCaptureFixture
):
    caplog.set_level("WARNING", logger="placeharm.services.auth")
    assert auth.change_account(accounts, ADMIN, "ana", "enable", "", VIA) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "administrator root: enable account ana",
        "account ana enabled",
    ]


def test_a_look_up_racing_real_records_does_not_remember_a_demo_session(
    accounts: DuckDBStore, tmp_path: Path
):
    accounts.upsert_user("demo", "Demo Analyst", "analyst", auth.NO_PASSWORD, True)
    cache = auth.SessionCache(RULES, _Clock(T0 + dt.timedelta(minutes=5)), recheck_s=60)
    token = auth.start_session(accounts, "ana", T0, RULES)
    cache.forget("nothing")  # the epoch has moved once before
    path = tmp_path / "nominals.csv"
    path.write_text("nominal_id,surname,forename\nN1,Real,Person\n")
    import_entity(accounts, "nominals", path)

    class _ImportWhileLooking(_ForgetWhileLooking):
        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            self.cache.data_changed(accounts)
            return False

    assert cache.look_up(accounts, token, _ImportWhileLooking(cache, token)) is not None
    assert cache.remembered(token) is None


def test_session_rules_come_from_the_settings():
    settings = Settings(session_idle_minutes=5, session_max_hours=2)
    rules = auth.SessionRules.from_settings(settings)
    assert rules == auth.SessionRules(dt.timedelta(minutes=5), dt.timedelta(hours=2))
    # the session cache's documented bound on remembered sessions
    assert auth.SessionCache().max_entries == 10_000
