"""Sign-in rules pinned with hand-worked values (issue 19): the client address throttling
counts by, failed sign-ins and their lock-outs (per name and address, per address, the
window, the doubling, the cap, forgetting, the memory bound), the refusal's wording and
wait, and the one refusal for every wrong password case.

Every expected value is written out here, never computed by the code under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import string
from collections.abc import Iterator
from pathlib import Path

import pytest

from placeharm.errors import PermissionDenied, TooManyAttempts
from placeharm.services import auth
from placeharm.soc.importer import import_entity
from placeharm.store.duckdb import DuckDBStore

# -- the client address key -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "key"),
    [
        (None, "unknown"),
        ("", "unknown"),
        ("10.0.0.1", "10.0.0.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        ("::1", "::/64"),
        ("client.example", "client.example"),
        ("x" * 64, "x" * 64),
        ("y" * 65, "y" * 64),
    ],
)
def test_address_key(address: str | None, key: str):
    assert auth.address_key(address) == key


# -- failed sign-ins ---------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def throttle(clock: Clock, **rules: float) -> auth.LoginThrottle:
    return auth.LoginThrottle(clock=clock, **rules)  # type: ignore[arg-type]


def refusal(t: auth.LoginThrottle, username: str, address: str | None) -> tuple[str, int]:
    with pytest.raises(TooManyAttempts) as refused:
        t.check(username, address)
    return str(refused.value), refused.value.retry_after_s


def test_five_failures_for_one_name_from_one_address_pause_that_pair_for_a_minute():
    clock = Clock()
    t = throttle(clock)
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    t.check("ann", "10.0.0.1")  # four: not yet
    t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1") == (
        "too many sign-in attempts: try again in 1 minute",
        60,
    )
    t.check("ann", "10.0.0.2")  # nobody elsewhere locks ann out
    t.check("bo", "10.0.0.1")  # the address has five of its ten
    clock.now = 1059.5
    assert refusal(t, "ann", "10.0.0.1") == (
        "too many sign-in attempts: try again in 1 minute",
        1,
    )
    clock.now = 1060.0  # the pause's last instant has passed
    t.check("ann", "10.0.0.1")


def test_the_name_is_compared_without_case_and_by_its_first_256_characters():
    t = throttle(Clock())
    for name in ("Ann", "ANN", "ann", "aNn", "AnN"):
        t.failed(name, "10.0.0.1")
    refusal(t, "ann", "10.0.0.1")
    long = "a" * 256
    for end in "bcdef":
        t.failed(long + end, "10.0.0.9")
    refusal(t, long + "z", "10.0.0.9")
    t.check("a" * 255, "10.0.0.9")


def test_an_ipv6_host_counts_by_its_64_network():
    t = throttle(Clock())
    for host in range(1, 6):
        t.failed("ann", f"2001:db8:1:2::{host}")
    refusal(t, "ann", "2001:db8:1:2:ffff::1")
    t.check("ann", "2001:db8:1:3::1")


def test_ten_failures_from_one_address_over_any_names_pause_the_address():
    clock = Clock()
    t = throttle(clock)
    for n in range(9):
        t.failed(f"user{n}", "10.0.0.3")
    t.check("someone", "10.0.0.3")  # nine: not yet
    t.failed("user9", "10.0.0.3")
    assert refusal(t, "someone", "10.0.0.3") == (
        "too many sign-in attempts: try again in 1 minute",
        60,
    )
    t.check("someone", "10.0.0.4")


def test_failures_older_than_the_window_no_longer_count():
    clock = Clock(0.0)
    t = throttle(clock)
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    clock.now = 899.5  # 899.5 s after the first four: still within 900 s
    t.failed("ann", "10.0.0.1")
    refusal(t, "ann", "10.0.0.1")

    clock = Clock(0.0)
    t = throttle(clock)
    for _ in range(4):
        t.failed("bo", "10.0.0.1")
    clock.now = 900.0  # exactly 900 s later: the first four have left the window
    t.failed("bo", "10.0.0.1")
    t.check("bo", "10.0.0.1")
    for _ in range(3):
        t.failed("bo", "10.0.0.1")
    t.check("bo", "10.0.0.1")  # four in the window
    t.failed("bo", "10.0.0.1")
    refusal(t, "bo", "10.0.0.1")


def test_each_further_pause_doubles_up_to_the_cap():
    clock = Clock(0.0)
    t = throttle(clock, per_account=1, per_address=1000, max_lockout_s=500.0)
    waits = []
    for _ in range(6):
        t.failed("ann", "10.0.0.1")
        message, wait = refusal(t, "ann", "10.0.0.1")
        waits.append((message, wait))
        clock.now += wait
    assert waits == [
        ("too many sign-in attempts: try again in 1 minute", 60),
        ("too many sign-in attempts: try again in 2 minutes", 120),
        ("too many sign-in attempts: try again in 4 minutes", 240),
        ("too many sign-in attempts: try again in 8 minutes", 480),
        ("too many sign-in attempts: try again in 9 minutes", 500),  # 960 s capped at 500
        ("too many sign-in attempts: try again in 9 minutes", 500),
    ]


def test_a_very_long_run_of_pauses_stays_at_the_hour():
    clock = Clock(0.0)
    t = throttle(clock, per_account=1, per_address=10_000)
    for _ in range(1100):  # 60.0 * 2 ** 1100 is past the largest float
        t.failed("ann", "10.0.0.1")
        clock.now += refusal(t, "ann", "10.0.0.1")[1]
    t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1") == (
        "too many sign-in attempts: try again in 60 minutes",
        3600,
    )


def test_a_wait_over_a_whole_minute_rounds_up():
    clock = Clock(0.0)
    t = throttle(clock, lockout_s=61.0)
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1") == (
        "too many sign-in attempts: try again in 2 minutes",
        61,
    )
    clock.now = 0.25
    assert refusal(t, "ann", "10.0.0.1") == (
        "too many sign-in attempts: try again in 2 minutes",
        61,  # 60.75 s rounds up
    )


def test_strikes_are_forgotten_a_day_after_the_last_failure_not_before():
    clock = Clock(0.0)
    t = throttle(clock)
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    clock.now = 86_400.0  # exactly a day after the last failure: still remembered
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1")[1] == 120
    clock.now = 86_400.0 + 86_400.5  # more than a day since: a first pause again
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1")[1] == 60


def test_a_tally_still_paused_is_not_forgotten():
    clock = Clock(0.0)
    t = throttle(clock, lockout_s=200.0, forget_s=100.0, per_address=1000)
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    clock.now = 150.0  # 150 s idle, over forget_s, but paused until 200
    t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1")[1] == 50


def test_a_pause_longer_than_the_forgetting_time_is_forgotten_from_its_end():
    clock = Clock(0.0)
    t = throttle(clock, lockout_s=200.0, forget_s=100.0, per_address=1000)
    for _ in range(5):
        t.failed("ann", "10.0.0.1")  # paused until 200
    clock.now = 200.0  # the pause has just ended, 200 s after the last failure
    for _ in range(5):
        t.failed("ann", "10.0.0.1")
    assert refusal(t, "ann", "10.0.0.1")[1] == 200  # a first pause again, not 400


def test_the_doubling_stops_at_two_to_the_thirtieth():
    clock = Clock(0.0)
    t = throttle(
        clock, per_account=1, per_address=10**9, lockout_s=1.0, max_lockout_s=1e12, forget_s=1e12
    )
    waits = []
    for _ in range(33):
        t.failed("ann", "10.0.0.1")
        wait = refusal(t, "ann", "10.0.0.1")[1]
        waits.append(wait)
        clock.now += wait
    assert waits[:3] == [1, 2, 4]
    assert waits[29:] == [536_870_912, 1_073_741_824, 1_073_741_824, 1_073_741_824]


def test_a_right_password_with_no_failures_held_is_fine():
    t = throttle(Clock())
    t.succeeded("ann", "10.0.0.1")
    assert len(t) == 0


def test_a_right_password_clears_the_pair_not_the_address():
    t = throttle(Clock())
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    t.succeeded("ANN", "10.0.0.1")
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    t.check("ann", "10.0.0.1")  # four since the success
    t.failed("bo", "10.0.0.1")  # the ninth from the address
    t.check("cy", "10.0.0.1")
    t.failed("cy", "10.0.0.1")  # the tenth
    refusal(t, "dee", "10.0.0.1")


def test_the_pause_warning_names_the_pair_or_only_the_address(caplog: pytest.LogCaptureFixture):
    t = throttle(Clock(), per_account=2, per_address=2)
    with caplog.at_level(logging.WARNING, logger="placeharm.services.auth"):
        t.failed("ann", "10.0.0.1")
        t.failed("ann", "10.0.0.1")
    assert [r.getMessage() for r in caplog.records] == [
        "sign-in paused for 60 s: 'ann' from 10.0.0.1",
        "sign-in paused for 60 s: address 10.0.0.1",
    ]


# -- attempts in flight (review finding: guesses sent at once were all checked) ------------


def refused_to_begin(t: auth.LoginThrottle, username: str, address: str | None) -> int:
    with pytest.raises(TooManyAttempts) as refused:
        t.begin(username, address)
    return refused.value.retry_after_s


def test_five_guesses_at_once_are_checked_the_sixth_waits_for_them():
    clock = Clock()
    t = throttle(clock)
    for _ in range(5):
        t.begin("ann", "10.0.0.1")  # five passwords being checked at once
    clock.now += 2
    with pytest.raises(TooManyAttempts) as refused:  # those in flight decide within seconds
        t.begin("ann", "10.0.0.1")
    assert str(refused.value) == "too many sign-in attempts at once: try again in a few seconds"
    assert refused.value.retry_after_s == 5
    t.begin("bo", "10.0.0.1")  # the address allows ten: another name may try
    for _ in range(5):
        t.failed("ann", "10.0.0.1")  # all five wrong: the pair is paused
    assert refused_to_begin(t, "ann", "10.0.0.1") == 60


def test_failures_and_attempts_in_flight_count_together():
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        t.failed("ann", "10.0.0.1")
    t.begin("ann", "10.0.0.1")
    t.begin("ann", "10.0.0.1")  # 3 failures + 2 in flight = 5
    with pytest.raises(TooManyAttempts):
        t.begin("ann", "10.0.0.1")
    t.succeeded("ann", "10.0.0.1")  # one was right: the pair is cleared
    t.begin("ann", "10.0.0.1")


def test_an_abandoned_attempt_is_neither_in_flight_nor_a_failure():
    clock = Clock()
    t = throttle(clock, per_account=2)
    t.begin("ann", "10.0.0.1")
    t.begin("ann", "10.0.0.1")
    with pytest.raises(TooManyAttempts):
        t.begin("ann", "10.0.0.1")
    t.abandon("ann", "10.0.0.1")  # the server failed, not the password
    t.begin("ann", "10.0.0.1")
    t.abandon("ann", "10.0.0.1")
    t.abandon("ann", "10.0.0.1")
    t.check("ann", "10.0.0.1")  # no failure counted


def test_an_attempt_never_ended_stops_counting_after_the_timeout_not_before():
    clock = Clock()
    t = throttle(clock, per_account=1)
    t.begin("ann", "10.0.0.1")  # its process died mid-check
    clock.now += 119.5
    with pytest.raises(TooManyAttempts):
        t.begin("ann", "10.0.0.1")
    clock.now += 0.5  # 120 s after it began
    t.begin("ann", "10.0.0.1")


def test_a_success_ends_the_address_attempt_so_ten_good_sign_ins_do_not_pause_it():
    clock = Clock()
    t = throttle(clock)
    for n in range(25):
        t.begin(f"user{n}", "10.0.0.9")
        t.succeeded(f"user{n}", "10.0.0.9")
    t.begin("another", "10.0.0.9")


def test_attempts_do_not_keep_a_shared_address_strikes_from_being_forgotten():
    """Review finding: good sign-ins every 12 hours from an office's one address kept its
    pause count alive, so each spray of typos paused it twice as long as the one before."""
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):  # three sprays of ten typos, each a day and a half apart
        for n in range(10):
            t.begin(f"user{n}", "10.0.0.8")
            t.failed(f"user{n}", "10.0.0.8")
        assert refusal(t, "someone", "10.0.0.8")[1] == 60  # never 120, 240 ...
        for _ in range(3):
            clock.now += 12 * 3600
            t.begin("ann", "10.0.0.8")
            t.succeeded("ann", "10.0.0.8")
        clock.now += 1  # 36 h after the spray: more than a day without a failure


def test_attempts_in_flight_are_kept_when_the_failures_are_forgotten():
    clock = Clock()
    t = throttle(clock, per_account=2)
    t.failed("ann", "10.0.0.1")
    clock.now += 86_401  # a day and a second: the failure is forgotten
    t.begin("ann", "10.0.0.1")
    t.begin("ann", "10.0.0.1")  # the first attempt still counts: two in flight
    with pytest.raises(TooManyAttempts):
        t.begin("ann", "10.0.0.1")


def test_failures_over_a_lowered_limit_wait_for_the_window_not_a_server_error():
    """Review finding: with the limit lowered after failures were counted (a restart with
    a new setting, tallies kept in the store), nothing in flight raised ValueError."""
    clock = Clock()
    t = throttle(clock)
    for _ in range(3):
        t.failed("ann", "10.0.0.1")
        clock.now += 10
    t.per_account = 2  # failures at 1000, 1010, 1020; now 1030
    # two must leave the 900 s window for one to remain: the second, at 1010, by 1910
    assert refused_to_begin(t, "ann", "10.0.0.1") == 880
    clock.now = 1910.0
    t.begin("ann", "10.0.0.1")


def test_the_memory_bound_forgets_the_least_recently_failed_sparing_pauses():
    t = throttle(Clock(), per_account=2, per_address=1000, max_keys=3)
    t.failed("ann", "10.0.0.1")
    t.failed("ann", "10.0.0.1")  # ann paused; keys: ann, the address
    t.failed("bo", "10.0.0.1")  # ann, bo, the address
    assert len(t) == 3
    t.failed("cy", "10.0.0.1")  # four keys: bo goes, not ann (paused, but failed longest ago)
    assert len(t) == 3
    refusal(t, "ann", "10.0.0.1")
    t.failed("bo", "10.0.0.1")  # bo's count starts again: cy goes
    t.check("bo", "10.0.0.1")
    assert len(t) == 3
    t.failed("cy", "10.0.0.1")  # cy's starts again too (bo goes)
    t.check("cy", "10.0.0.1")
    t.failed("cy", "10.0.0.1")
    refusal(t, "cy", "10.0.0.1")


def test_a_pause_ending_at_this_instant_is_not_spared():
    clock = Clock(0.0)
    t = throttle(clock, per_account=2, per_address=1000, max_keys=3)
    t.failed("ann", "10.0.0.1")
    t.failed("ann", "10.0.0.1")  # ann paused until 60
    t.failed("bo", "10.0.0.1")
    clock.now = 60.0
    t.failed("cy", "10.0.0.1")  # four keys: ann's pause has ended, so ann goes, not bo
    t.failed("bo", "10.0.0.1")  # bo's second failure
    refusal(t, "bo", "10.0.0.1")


def test_the_default_memory_bound_is_ten_thousand_tallies():
    t = auth.LoginThrottle(clock=Clock())
    for n in range(5000):  # a pair and an address each
        t.failed("ann", f"10.0.{n // 256}.{n % 256}")
    assert len(t) == 10_000
    t.failed("ann", "10.1.0.0")
    assert len(t) == 10_000


def test_the_memory_bound_holds_even_when_every_tally_is_paused():
    t = throttle(Clock(), per_account=1, per_address=1, max_keys=1)
    t.failed("ann", "10.0.0.1")  # both keys paused; the older (the pair) goes
    assert len(t) == 1
    refusal(t, "bo", "10.0.0.1")  # the address is still paused
    t.check("ann", "10.0.0.2")


def test_under_the_memory_bound_nothing_is_forgotten():
    t = throttle(Clock(), per_address=1000, max_keys=4)
    t.failed("ann", "10.0.0.1")
    t.failed("bo", "10.0.0.1")
    t.failed("cy", "10.0.0.1")
    assert len(t) == 4
    for _ in range(4):
        t.failed("ann", "10.0.0.1")
    refusal(t, "ann", "10.0.0.1")  # ann's first failure was kept


# -- one refusal for every wrong case -------------------------------------------------------


@pytest.fixture(scope="module")
def password_hash() -> str:
    return auth._hash("right horse battery")


def account(hashed: str, **changes: object) -> dict[str, object]:
    return {"disabled": False, "demo": False, "password_hash": hashed, **changes}


def test_the_right_password_for_a_local_account_passes(password_hash: str):
    auth.check_password(account(password_hash), "right horse battery", real_data=True)
    auth.check_password(
        account(password_hash, auth_source="local"), "right horse battery", real_data=True
    )
    auth.check_password(account(password_hash, demo=True), "right horse battery", False)


@pytest.mark.parametrize(
    ("changes", "password", "real_data"),
    [
        ({}, "wrong horse battery", False),
        ({"disabled": True}, "right horse battery", False),
        ({"demo": True}, "right horse battery", True),
        ({"auth_source": "oidc"}, "right horse battery", False),
        ({"password_hash": auth.NO_PASSWORD}, "right horse battery", False),
    ],
)
def test_every_wrong_case_gets_the_same_refusal(
    password_hash: str, changes: dict[str, object], password: str, real_data: bool
):
    with pytest.raises(PermissionDenied) as refused:
        auth.check_password(account(password_hash, **changes), password, real_data)
    assert str(refused.value) == "wrong username or password"


def test_an_unknown_user_gets_the_same_refusal():
    with pytest.raises(PermissionDenied) as refused:
        auth.check_password(None, "anything at all", real_data=False)
    assert str(refused.value) == "wrong username or password"


# -- signing in: the session it starts --------------------------------------------------------

T0 = dt.datetime(2026, 3, 2, 8, 0, 0)
TWO_HOURS = auth.SessionRules(idle=dt.timedelta(minutes=30), max_age=dt.timedelta(hours=2))


@pytest.fixture
def accounts(store_at, password_hash: str) -> Iterator[DuckDBStore]:
    with store_at("auth") as store:
        store.upsert_user("ana", "Ana Analyst", "analyst", password_hash, False)
        yield store


def held(store: DuckDBStore, token: str) -> dict[str, object] | None:
    return store.session(hashlib.sha256(token.encode()).hexdigest())


def test_login_starts_a_session_with_the_rules_given(accounts: DuckDBStore):
    token = auth.login(accounts, "ana", "right horse battery", T0, TWO_HOURS)
    session = held(accounts, token)
    assert session is not None
    assert session["username"] == "ana"
    assert session["created_at"] == T0
    assert session["expires_at"] == dt.datetime(2026, 3, 2, 10, 0)
    with pytest.raises(PermissionDenied):
        auth.login(accounts, "ana", "wrong horse battery", T0, TWO_HOURS)
    with pytest.raises(PermissionDenied):
        auth.login(accounts, "nobody", "right horse battery", T0, TWO_HOURS)


def test_a_session_token_carries_256_random_bits(accounts: DuckDBStore):
    tokens = {auth.start_session(accounts, "ana", T0) for _ in range(3)}
    assert len(tokens) == 3
    for token in tokens:
        # 32 random bytes in unpadded URL-safe base64: 43 characters
        assert len(token) == 43
        assert set(token) <= set(string.ascii_letters + string.digits + "-_")


def test_signing_in_purges_sessions_already_expired(accounts: DuckDBStore):
    first = auth.start_session(accounts, "ana", T0, TWO_HOURS)  # ends at 10:00
    second = auth.start_session(accounts, "ana", dt.datetime(2026, 3, 2, 9), TWO_HOURS)
    assert held(accounts, first) is not None  # not expired yet at 09:00
    auth.start_session(accounts, "ana", dt.datetime(2026, 3, 2, 10), TWO_HOURS)
    assert held(accounts, first) is None  # expired at its instant, 10:00
    assert held(accounts, second) is not None  # ends at 11:00


def test_a_demo_account_cannot_sign_in_once_the_store_holds_real_records(
    accounts: DuckDBStore, password_hash: str, tmp_path: Path
):
    accounts.upsert_user("demo", "Demo Analyst", "analyst", password_hash, True)
    assert held(accounts, auth.login(accounts, "demo", "right horse battery", T0)) is not None
    path = tmp_path / "nominals.csv"
    path.write_text("nominal_id,surname,forename\nN1,Real,Person\n")  # not synthetic
    import_entity(accounts, "nominals", path)
    with pytest.raises(PermissionDenied) as refused:
        auth.login(accounts, "demo", "right horse battery", T0)
    assert str(refused.value) == "wrong username or password"
    assert held(accounts, auth.login(accounts, "ana", "right horse battery", T0)) is not None
