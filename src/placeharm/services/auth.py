"""Local user accounts (argon2id password hashes) and sessions (random tokens, stored hashed).

A session ends at the first of (docs/security/accounts.md):
- signing out;
- `session_max_hours` after signing in (its absolute lifetime);
- `session_idle_minutes` after the last request on it (idle timeout);
- the account being disabled, or its role or password changed: every session of that user is
  deleted at once;
- for a demo account, the store holding any SOC record not flagged synthetic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from placeharm import audit
from placeharm.errors import Busy, DataError, NotFound, PermissionDenied, TooManyAttempts
from placeharm.services.passwords import check_password_rules
from placeharm.services.policy import Role, User
from placeharm.store.base import Store

if TYPE_CHECKING:
    from placeharm.config import Settings

log = logging.getLogger(__name__)
SESSION_HOURS = 10  # one shift: the default absolute lifetime (setting session_max_hours)
IDLE_MINUTES = 30  # the default idle timeout (setting session_idle_minutes)
# A session's last-seen time is written to the store at most this often (one write per
# active session per minute, not per request); the web server re-checks a remembered
# session against the store as often.
TOUCH_S = 60.0
_HASHER = PasswordHasher()
HASH_WAIT_S = 10.0  # longest wait for a turn to hash, then Busy
BUSY = "the server is busy signing other people in; wait a few seconds and try again"


class HashGate:
    """At most `slots` argon2id computations at once. Each takes 64 MiB and ~50 ms of a
    core, so a flood of sign-ins could otherwise take all memory and stall the server
    (issue 12); beyond `slots` a caller waits its turn for at most `wait_s`, then is refused
    with Busy."""

    def __init__(self, slots: int = 2, wait_s: float = HASH_WAIT_S) -> None:
        self.slots = slots
        self.wait_s = wait_s
        self._semaphore = threading.BoundedSemaphore(slots)

    @contextmanager
    def turn(self) -> Iterator[None]:
        if not self._semaphore.acquire(timeout=self.wait_s):
            raise Busy(BUSY)
        try:
            yield
        finally:
            self._semaphore.release()


_GATE = HashGate()


def limit_hashing(slots: int, wait_s: float = HASH_WAIT_S) -> HashGate:
    """Set how many password hashes this process computes at once (setting
    password_hash_concurrency); returns the gate. Hashes in progress finish under the old one."""
    global _GATE
    if (_GATE.slots, _GATE.wait_s) != (slots, wait_s):
        _GATE = HashGate(slots, wait_s)
    return _GATE


def _hash(password: str) -> str:
    with _GATE.turn():
        return _HASHER.hash(password)


def _verify(password_hash: str, password: str) -> None:
    with _GATE.turn():
        _HASHER.verify(password_hash, password)


# Demo accounts, created by `placeharm demo` only (flagged demo; never in a force's store).
DEMO_USERS = {
    "officer": ("Neighbourhood officer (demo)", Role.officer),
    "analyst": ("Intelligence analyst (demo)", Role.analyst),
    "supervisor": ("Supervisor (demo)", Role.supervisor),
    "leader": ("Senior leader (demo)", Role.senior_leader),
    "partner": ("Community safety partner (demo)", Role.partner),
    "admin": ("Administrator (demo)", Role.admin),
    "auditor": ("Auditor (demo)", Role.auditor),
}
DEMO_PASSWORD_SUFFIX = "-demo-2026"
# The password_hash of a single sign-on account: not an argon2 hash, so no password verifies.
NO_PASSWORD = "!sso: signs in with the identity provider only"

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    """Now, in UTC without a time zone (as the store keeps times)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


_now = utcnow


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionRules:
    """How long a session lasts: `idle` after its last request, `max_age` after sign-in."""

    idle: dt.timedelta = dt.timedelta(minutes=IDLE_MINUTES)
    max_age: dt.timedelta = dt.timedelta(hours=SESSION_HOURS)

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionRules:
        return cls(
            idle=dt.timedelta(minutes=settings.session_idle_minutes),
            max_age=dt.timedelta(hours=settings.session_max_hours),
        )

    def ends_at(self, session: dict[str, Any], last_seen: dt.datetime | None = None) -> dt.datetime:
        """The instant the session stops working: valid while now < this, refused from it.
        `last_seen` is a later request known only in memory (the store's copy lags)."""
        seen: dt.datetime = session["last_seen_at"]
        if last_seen is not None and last_seen > seen:
            seen = last_seen
        created: dt.datetime = session["created_at"]
        expires: dt.datetime = session["expires_at"]
        return min(expires, created + self.max_age, seen + self.idle)


DEFAULT_RULES = SessionRules()


# -- accounts ------------------------------------------------------------------------------


def _check_username(username: str) -> None:
    if not 0 < len(username) <= 64 or not username.replace("_", "").replace("-", "").isalnum():
        raise DataError("a username is 1 to 64 letters, digits, '-' and '_'")


def create_user(
    store: Store,
    username: str,
    display_name: str,
    role: Role | str,
    password: str,
    demo: bool = False,
) -> User:
    """Create (or replace) an account. The password rules (services/passwords.py) apply to
    every account except demo accounts, whose published passwords contain their username;
    they are refused anyway once the store holds real records. Replacing an account ends
    all its sessions."""
    _check_username(username)
    if demo:
        if len(password) < 12:
            raise DataError("a password needs at least 12 characters")
    else:
        check_password_rules(password, username, display_name)
    role = _role(role)
    password_hash = _hash(password)
    with store.transaction():
        existed = store.user(username)
        if existed is not None and existed.get("auth_source", "local") != "local":
            # never turn a single sign-on account into a password one (docs/security/sso.md)
            raise DataError(
                f"{username} is a single sign-on account; its role comes from the identity "
                "provider's groups. Choose another username for a local account"
            )
        store.upsert_user(username, display_name, role.value, password_hash, demo)
        if existed is not None:
            store.end_user_sessions(username)
    return User(username, display_name, role)


def create_demo_users(store: Store) -> dict[str, str]:
    """The demo accounts, one per role; returns username -> password for the demo to print."""
    out = {}
    for username, (name, role) in DEMO_USERS.items():
        password = username + DEMO_PASSWORD_SUFFIX
        if store.user(username) is None:
            create_user(store, username, name, role, password, demo=True)
        out[username] = password
    return out


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise DataError(
            f"unknown role {role!r}; use one of: {', '.join(r.value for r in Role)}"
        ) from None


def _no_user(username: str) -> NotFound:
    return NotFound(f"no user {username!r}; see the accounts with `placeharm users list`")


def _log_change(
    store: Store, actor: audit.Actor, username: str, change: str, query: dict[str, Any]
) -> None:
    """An account change in the audit log, in the change's own transaction (an alteration:
    who changed which account, and how; never a password)."""
    audit.log_for(store).record(
        store,
        actor,
        "alteration",
        "user",
        f"users {change}",
        record_ids={"user": [username]},
        query=query,
    )


def disable_user(
    store: Store, username: str, actor: audit.Actor, now: dt.datetime | None = None
) -> int:
    """Disable an account and end all its sessions; how many sessions were ended."""
    with store.transaction():
        if not store.set_user_disabled(username, True, now or utcnow()):
            raise _no_user(username)
        ended = store.end_user_sessions(username)
        _log_change(store, actor, username, "disable", {"sessions_ended": ended})
    log.warning("account %s disabled; %d sessions ended", username, ended)
    return ended


def enable_user(store: Store, username: str, actor: audit.Actor) -> None:
    """Let a disabled account sign in again (its old sessions stay ended)."""
    with store.transaction():
        if not store.set_user_disabled(username, False, utcnow()):
            raise _no_user(username)
        _log_change(store, actor, username, "enable", {})
    log.warning("account %s enabled", username)


def set_role(store: Store, username: str, role: Role | str, actor: audit.Actor) -> int:
    """Change an account's role and end all its sessions (they carry the old role)."""
    new = _role(role)
    with store.transaction():
        if not store.set_user_role(username, new.value):
            raise _no_user(username)
        ended = store.end_user_sessions(username)
        _log_change(store, actor, username, "role", {"role": new.value, "sessions_ended": ended})
    log.warning("account %s role set to %s; %d sessions ended", username, new.value, ended)
    return ended


def set_password(
    store: Store,
    username: str,
    password: str,
    actor: audit.Actor,
    now: dt.datetime | None = None,
) -> int:
    """Set a new password (the password rules apply) and end all the account's sessions."""
    record = store.user(username)
    if record is None:
        raise _no_user(username)
    check_password_rules(password, username, record["display_name"])
    password_hash = _hash(password)  # slow: before the transaction
    with store.transaction():
        if not store.set_user_password(username, password_hash, now or utcnow()):
            raise _no_user(username)
        ended = store.end_user_sessions(username)
        _log_change(store, actor, username, "password", {"sessions_ended": ended})
    log.warning("account %s password set; %d sessions ended", username, ended)
    return ended


ACCOUNT_ACTIONS = ("disable", "enable", "role", "password")


def change_account(
    store: Store, actor: User, username: str, action: str, value: str, via: audit.Actor
) -> int:
    """An administrator's change to an account (the admin page): disable, enable, role
    (value: the new role) or password (value: the new password). How many of the account's
    sessions were ended; `via` is the administrator as the audit log records them (with
    their client address). An administrator cannot disable their own account or change their
    own role here, so the last administrator cannot lock everyone out by mistake."""
    if actor.role is not Role.admin:
        raise PermissionDenied("only an administrator can change accounts")
    if action not in ACCOUNT_ACTIONS:
        raise DataError(
            f"unknown account action {action!r}; use one of {', '.join(ACCOUNT_ACTIONS)}"
        )
    log.warning("administrator %s: %s account %s", actor.username, action, username)
    if username == actor.username and action in ("disable", "role"):
        raise PermissionDenied(
            "you cannot disable your own account or change your own role: ask another "
            "administrator to do it"
        )
    if store.user(username) is None:  # the page's wording: no command-line advice
        raise NotFound(f"no user {username!r}; the accounts table on this page lists who exists")
    if action == "disable":
        return disable_user(store, username, via)
    if action == "enable":
        enable_user(store, username, via)
        return 0
    if action == "role":
        return set_role(store, username, value, via)
    return set_password(store, username, value, via)


# -- sessions ------------------------------------------------------------------------------


def check_password(record: dict[str, Any] | None, password: str, real_data: bool) -> None:
    """Raise the same refusal for every wrong case (unknown user, disabled, wrong password,
    a demo account on a store holding a force's real SOC records). Slow on purpose
    (argon2id): call it without holding the store lock. Raises Busy when too many hashes
    are already being computed (HashGate)."""
    refused = PermissionDenied("wrong username or password")
    if (
        record is None
        or record["disabled"]
        or (record["demo"] and real_data)
        or record.get("auth_source", "local") != "local"  # single sign-on accounts
    ):
        _hash(password)  # spend the same time as a real check
        raise refused
    try:
        _verify(record["password_hash"], password)
    except (VerificationError, InvalidHashError):
        raise refused from None


def start_session(
    store: Store, username: str, now: dt.datetime | None = None, rules: SessionRules = DEFAULT_RULES
) -> str:
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    with store.transaction():
        store.purge_sessions(now)  # expired sessions are not kept
        store.add_session(_token_hash(token), username, now + rules.max_age, created_at=now)
    return token


def login(
    store: Store,
    username: str,
    password: str,
    now: dt.datetime | None = None,
    rules: SessionRules = DEFAULT_RULES,
) -> str:
    """A new session token for the right password (see `check_password`)."""
    check_password(store.user(username), password, store.has_real_soc_records())
    return start_session(store, username, now, rules)


@dataclass(frozen=True, slots=True)
class _Valid:
    user: User
    demo: bool
    session: dict[str, Any]
    ends_at: dt.datetime


def _valid_session(
    store: Store,
    token_hash: str,
    now: dt.datetime,
    rules: SessionRules,
    real_data: bool | Callable[[], bool],
    last_seen: dt.datetime | None = None,
) -> _Valid | None:
    session = store.session(token_hash)
    if session is None:
        return None
    ends_at = rules.ends_at(session, last_seen)
    if now >= ends_at:
        return None
    record = store.user(session["username"])
    if record is None or record["disabled"]:
        return None
    if record["demo"] and (real_data() if callable(real_data) else real_data):
        return None
    user = User(record["username"], record["display_name"], Role(record["role"]))
    return _Valid(user, bool(record["demo"]), session, ends_at)


def user_for(
    store: Store,
    token: str | None,
    now: dt.datetime | None = None,
    rules: SessionRules = DEFAULT_RULES,
) -> User | None:
    """The user of a live session, else None (ended, expired, idle, disabled, or a demo
    account on a store with real records). Reads only: it does not count as activity."""
    if not token:
        return None
    valid = _valid_session(
        store, _token_hash(token), now or utcnow(), rules, store.has_real_soc_records
    )
    return None if valid is None else valid.user


def touch(store: Store, token: str, now: dt.datetime | None = None) -> None:
    """Record a request on the session (what the idle timeout counts from)."""
    with store.transaction():
        store.touch_session(_token_hash(token), now or utcnow())


def logout(store: Store, token: str | None) -> None:
    if token:
        with store.transaction():
            store.end_session(_token_hash(token))


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


@dataclass(slots=True)
class _Remembered:
    user: User
    demo: bool
    checked: dt.datetime  # when the store was last asked
    fixed_end: dt.datetime  # absolute end: min(expires_at, created_at + max_age)
    last_seen: dt.datetime  # the latest request on the session seen by this process
    stored_seen: dt.datetime  # the last-seen time the store holds


class SessionCache:
    """The web server's memory of signed-in sessions, so most requests need no store read.

    A remembered session is answered from memory (no I/O: safe on the event loop) for up to
    `recheck_s` after the store was last asked; then the store is asked again, from a worker
    thread, and the last-seen time written if the store's copy is `recheck_s` old or more.
    The idle timeout is counted from the latest request this process saw (exact, to the
    clock's resolution); after a restart, from the store's copy, which is at most
    `recheck_s` behind, so a session then ends at most that much early, never late.
    Account changes made through the web app drop the user's entries at once
    (`forget_user`); the whole cache is bounded to `max_entries`. On a store several
    processes share (PostgreSQL: `serve --workers`, or the CLI changing accounts while the
    server runs) `recheck_s` is 0: every request asks the store, so a session ended by any
    process is refused at once by every other (issue 17); `touch_s` keeps the last-seen
    writes at one a minute.
    """

    def __init__(
        self,
        rules: SessionRules = DEFAULT_RULES,
        clock: Clock = utcnow,
        recheck_s: float = TOUCH_S,
        max_entries: int = 10_000,
        touch_s: float | None = None,
    ) -> None:
        self.rules = rules
        self.clock = clock
        self.recheck = dt.timedelta(seconds=recheck_s)
        # how often the last-seen time is written: `recheck_s` unless given (a store shared
        # by several processes re-checks every request, `recheck_s` 0, and still writes
        # the last-seen time once a minute)
        self.touch = dt.timedelta(seconds=recheck_s if touch_s is None else touch_s)
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()
        self._lock = threading.Lock()
        self._real: bool | None = None  # whether the store holds real SOC records
        # bumped whenever sessions are forgotten: a look-up that read the store before
        # then must not remember what it read (it may be a session just ended)
        self._epoch = 0

    def __len__(self) -> int:
        return len(self._entries)

    def remembered(self, token: str) -> User | None:
        """The user from memory if checked recently and not ended; None means ask the store
        (`look_up`). Counts as a request on the session."""
        now = self.clock()
        with self._lock:
            entry = self._entries.get(token)
            if entry is None or now - entry.checked >= self.recheck:
                return None
            if now >= min(entry.fixed_end, entry.last_seen + self.rules.idle):
                del self._entries[token]
                return None
            if now > entry.last_seen:
                entry.last_seen = now
            return entry.user

    def look_up(
        self, store: Store, token: str, write_lock: _Lock, activity: bool = True
    ) -> User | None:
        """The user of a live session from the store (and remember it), else None. With
        `activity`, this is a request: the store's last-seen time is brought up to date if
        it is `recheck_s` old, unless the store is busy writing (an import): then the next
        look-up does it, and this process still counts from the request."""
        now = self.clock()
        token_hash = _token_hash(token)
        with self._lock:
            prior = self._entries.get(token)
            epoch = self._epoch
        valid = _valid_session(
            store,
            token_hash,
            now,
            self.rules,
            lambda: self.real_data(store),
            None if prior is None else prior.last_seen,
        )
        if valid is None:
            with self._lock:
                self._entries.pop(token, None)
            return None
        session = valid.session
        stored_seen: dt.datetime = session["last_seen_at"]
        last_seen = max(stored_seen, prior.last_seen) if prior is not None else stored_seen
        if activity:
            last_seen = max(last_seen, now)
            if now - stored_seen >= self.touch and write_lock.acquire(blocking=False):
                try:
                    touch(store, token, now)
                    stored_seen = now
                finally:
                    write_lock.release()
        fixed_end = min(session["expires_at"], session["created_at"] + self.rules.max_age)
        entry = _Remembered(valid.user, valid.demo, now, fixed_end, last_seen, stored_seen)
        with self._lock:
            if self._epoch == epoch:
                self._entries[token] = entry
                self._entries.move_to_end(token)
                if len(self._entries) > self.max_entries:
                    self._shrink(now)
        return valid.user

    def _shrink(self, now: dt.datetime) -> None:
        # entries not checked within `recheck` would be asked of the store anyway
        for key in [k for k, e in self._entries.items() if now - e.checked >= self.recheck]:
            del self._entries[key]
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, token: str) -> None:
        with self._lock:
            self._epoch += 1
            self._entries.pop(token, None)

    def forget_user(self, username: str) -> int:
        """Drop every remembered session of one user (after disabling, a role or password
        change: the store's sessions are already deleted)."""
        with self._lock:
            self._epoch += 1
            gone = [k for k, e in self._entries.items() if e.user.username == username]
            for key in gone:
                del self._entries[key]
        return len(gone)

    def real_data(self, store: Store) -> bool:
        """Whether the store holds real (non-synthetic) SOC records: asked once, then
        remembered until `data_changed`."""
        if self._real is None:
            self._real = store.has_real_soc_records()
        return self._real

    def forget_real_data(self) -> None:
        """Another process committed: ask the store again whether it holds real records."""
        self._real = None

    def data_changed(self, store: Store) -> int:
        """After an import commits: ask again whether the store holds real records; if so,
        end every demo session in the store and in memory. How many were in memory."""
        self._real = store.has_real_soc_records()
        if not self._real:
            return 0
        with store.transaction():
            ended = store.end_demo_sessions()
        if ended:
            log.warning("real SOC records imported: %d demo sessions ended", ended)
        with self._lock:
            self._epoch += 1
            gone = [k for k, e in self._entries.items() if e.demo]
            for key in gone:
                del self._entries[key]
        return len(gone)


# -- sign-in throttling --------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    failures: list[float] = field(default_factory=list)
    strikes: int = 0  # lock-outs so far: each doubles the next
    locked_until: float = 0.0
    last: float = 0.0  # the last failure (forgetting counts from it)
    pending: list[float] = field(default_factory=list)  # attempts begun, not yet decided


# the wait a sign-in refused for the attempts in flight is told (they end within a hash's time)
IN_FLIGHT_WAIT_S = 5


def _end_one(tally: _Tally) -> None:
    """One attempt in flight is decided (the oldest: which one does not matter)."""
    if tally.pending:
        tally.pending.pop(0)


def address_key(address: str | None) -> str:
    """The client address throttling counts by: an IPv6 address by its /64 network (one
    host usually holds a whole /64), anything else as given."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Failed sign-ins counted per (username, client address) and per client address.

    `per_account` failures for one username from one address within `window_s`, or
    `per_address` failures from one address for any usernames, lock that pair or that
    address out for `lockout_s`, doubling with each further lock-out up to `max_lockout_s`
    (forgotten after `forget_s` without failures). So a spray of many usernames from one
    address is slowed, but nobody can lock a named user out from other addresses, and every
    lock-out ends. A success clears the pair, not the address. Memory: at most `max_keys`
    tallies, the least recently failed forgotten first.

    Attempts in flight count too (`begin`): a password is checked only while the failures
    in the window plus the attempts still being checked stay under the limit, so guesses
    sent at once cannot all be checked before the first failure is counted. An attempt
    begun is ended by `failed`, `succeeded` or `abandon`, or forgotten after
    `attempt_timeout_s` (a process that died mid-check).
    """

    def __init__(
        self,
        per_account: int = 5,
        per_address: int = 10,
        window_s: float = 900.0,
        lockout_s: float = 60.0,
        max_lockout_s: float = 3600.0,
        forget_s: float = 86_400.0,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        attempt_timeout_s: float = 120.0,
    ) -> None:
        self.attempt_timeout_s = attempt_timeout_s
        self.per_account = per_account
        self.per_address = per_address
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_s = forget_s
        self.max_keys = max_keys
        self.clock = clock
        self._tallies: OrderedDict[tuple[str, ...], _Tally] = OrderedDict()
        self._lock = threading.Lock()

    def _keys(self, username: str, address: str | None) -> list[tuple[tuple[str, ...], int]]:
        where = address_key(address)
        return [
            (("account", username.casefold()[:256], where), self.per_account),
            (("address", where), self.per_address),
        ]

    def check(self, username: str, address: str | None = None) -> None:
        """Raise TooManyAttempts while this username from this address, or this address,
        is locked out."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key, _ in self._keys(username, address):
                tally = self._tallies.get(key)
                if tally is not None and tally.locked_until > now:
                    wait = max(wait, tally.locked_until - now)
        self._refuse_until(now + wait, now)

    def begin(self, username: str, address: str | None = None) -> None:
        """Before a password is checked: raise TooManyAttempts while this pair or address
        is locked out, or while its failures in the window plus its attempts in flight
        reach the limit; else count this attempt as in flight."""
        now = self.clock()
        with self._lock:
            keys = self._keys(username, address)
            tallies = [self._live(key, now) for key, _ in keys]
            self._admit(tallies, [limit for _, limit in keys], now)
            for (key, _), tally in zip(keys, tallies, strict=True):
                self._tallies[key] = tally
                self._tallies.move_to_end(key)
            self._bound(now)

    def _live(self, key: tuple[str, ...], now: float) -> _Tally:
        tally = self._tallies.get(key)
        if tally is None:
            return _Tally()
        return self._forgotten(tally, now)

    def _forgotten(self, tally: _Tally, now: float) -> _Tally:
        """`tally` with its failures and strikes forgotten a day (`forget_s`) after its last
        failure, unless a pause runs; attempts in flight are kept whatever its age."""
        if now - tally.last > self.forget_s and tally.locked_until <= now:
            return _Tally(pending=tally.pending)
        return tally

    def _admit(self, tallies: list[_Tally], limits: list[int], now: float) -> None:
        """The rule of `begin` on the tallies of its keys (changed in place when admitted).
        Beginning an attempt is not a failure: `last` (the last failure, which the
        forgetting counts from) does not move."""
        self._refuse_until(max(t.locked_until for t in tallies), now)
        for tally, limit in zip(tallies, limits, strict=True):
            tally.pending = [t for t in tally.pending if now - t < self.attempt_timeout_s]
            recent = sorted(t for t in tally.failures if now - t < self.window_s)
            if len(recent) + len(tally.pending) < limit:
                continue
            if tally.pending:  # those in flight decide within a hash's time
                raise TooManyAttempts(
                    "too many sign-in attempts at once: try again in a few seconds",
                    retry_after_s=IN_FLIGHT_WAIT_S,
                )
            # failures alone at the limit (it was lowered since they were counted): until
            # enough of them leave the window
            self._refuse_until(recent[len(recent) - limit] + self.window_s, now)
        for tally in tallies:
            tally.pending.append(now)

    def abandon(self, username: str, address: str | None = None) -> None:
        """An attempt begun that ended without a verdict (a failure of the server, not of
        the password): no longer in flight, not counted."""
        with self._lock:
            for key, _ in self._keys(username, address):
                tally = self._tallies.get(key)
                if tally is not None:
                    _end_one(tally)

    def failed(self, username: str, address: str | None = None) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in self._keys(username, address):
                tally = self._live(key, now)
                self._tallies[key] = tally
                self._tallies.move_to_end(key)
                _end_one(tally)
                self._count(key, tally, limit, now)
            self._bound(now)

    def _count(self, key: tuple[str, ...], tally: _Tally, limit: int, now: float) -> None:
        """One failure on `tally`: a lock-out once `limit` fall within the window."""
        tally.last = now
        tally.failures = [t for t in tally.failures if now - t < self.window_s]
        tally.failures.append(now)
        if len(tally.failures) >= limit:
            tally.strikes += 1
            pause = min(self.lockout_s * 2 ** min(tally.strikes - 1, 30), self.max_lockout_s)
            tally.locked_until = now + pause
            tally.failures = []
            # an address pause names no username (a spray's "names" may include a
            # password typed into the wrong box); a pair pause names the one tried
            log.warning(
                "sign-in paused for %.0f s: %s",
                pause,
                f"address {key[1]}" if key[0] == "address" else f"{key[1]!r} from {key[2]}",
            )

    def _refuse_until(self, locked_until: float, now: float) -> None:
        wait = locked_until - now
        if wait > 0:
            minutes = max(1, math.ceil(wait / 60))
            raise TooManyAttempts(
                f"too many sign-in attempts: try again in {minutes} "
                f"minute{'s' if minutes != 1 else ''}",
                retry_after_s=math.ceil(wait),
            )

    def _bound(self, now: float) -> None:
        if len(self._tallies) <= self.max_keys:
            return
        # forget the least recently failed first, sparing live lock-outs while we can
        for key in [k for k, t in self._tallies.items() if t.locked_until <= now]:
            if len(self._tallies) <= self.max_keys:
                return
            del self._tallies[key]
        while len(self._tallies) > self.max_keys:
            self._tallies.popitem(last=False)

    def succeeded(self, username: str, address: str | None = None) -> None:
        """A right password: forget this pair's failures (not the address's)."""
        with self._lock:
            pair, where = (key for key, _ in self._keys(username, address))
            self._tallies.pop(pair, None)
            tally = self._tallies.get(where)
            if tally is not None:
                _end_one(tally)

    def __len__(self) -> int:
        return len(self._tallies)


class TallyStore(Protocol):
    """What a store offers to keep sign-in tallies (the PostgreSQL store, issue 17)."""

    def transaction(self) -> AbstractContextManager[None]: ...

    def sign_in_tallies(
        self, keys: list[str], for_update: bool = False
    ) -> dict[str, tuple[list[float], int, float, float, list[float]]]: ...

    def put_sign_in_tally(
        self,
        key: str,
        failures: list[float],
        strikes: int,
        locked_until: float,
        last: float,
        pending: list[float],
    ) -> None: ...

    def forget_sign_in_tallies(
        self, keys: list[str] | None = None, idle_before: float = 0, busy_since: float = 0
    ) -> int: ...


class StoreLoginThrottle(LoginThrottle):
    """`LoginThrottle`'s rules with the tallies kept in the store, so every app process
    sharing it (`serve --workers N` on PostgreSQL) counts the same failures and the same
    attempts in flight: ten failures spread over two workers lock out as ten on one would.
    Each change of a tally is one transaction that waits for the one before it (the store's
    lock). The clock is the wall clock (seconds since the epoch), the one every process
    shares. Tallies are forgotten `forget_s` after their last failure or attempt, when the
    next failure is counted."""

    def __init__(
        self,
        store: TallyStore,
        per_account: int = 5,
        per_address: int = 10,
        window_s: float = 900.0,
        lockout_s: float = 60.0,
        max_lockout_s: float = 3600.0,
        forget_s: float = 86_400.0,
        clock: Callable[[], float] = time.time,
        attempt_timeout_s: float = 120.0,
    ) -> None:
        super().__init__(
            per_account,
            per_address,
            window_s,
            lockout_s,
            max_lockout_s,
            forget_s,
            clock=clock,
            attempt_timeout_s=attempt_timeout_s,
        )
        self.store = store

    @staticmethod
    def _name(key: tuple[str, ...]) -> str:
        return json.dumps(key, ensure_ascii=False)

    def check(self, username: str, address: str | None = None) -> None:
        now = self.clock()
        keys = [self._name(k) for k, _ in self._keys(username, address)]
        held = self.store.sign_in_tallies(keys)
        self._refuse_until(max((t[2] for t in held.values()), default=0.0), now)

    def _held(self, keys: list[str], now: float) -> list[_Tally]:
        """The tallies of `keys`, locked until the transaction ends (a forgotten one anew)."""
        held = self.store.sign_in_tallies(keys, for_update=True)
        tallies = []
        for name in keys:
            row = held.get(name)
            tally = _Tally() if row is None else _Tally(row[0], row[1], row[2], row[3], row[4])
            tallies.append(self._forgotten(tally, now))
        return tallies

    def _put(self, name: str, tally: _Tally) -> None:
        self.store.put_sign_in_tally(
            name, tally.failures, tally.strikes, tally.locked_until, tally.last, tally.pending
        )

    def begin(self, username: str, address: str | None = None) -> None:
        now = self.clock()
        keys = self._keys(username, address)
        names = [self._name(k) for k, _ in keys]
        with self.store.transaction():
            tallies = self._held(names, now)
            self._admit(tallies, [limit for _, limit in keys], now)
            for name, tally in zip(names, tallies, strict=True):
                self._put(name, tally)

    def abandon(self, username: str, address: str | None = None) -> None:
        names = [self._name(k) for k, _ in self._keys(username, address)]
        with self.store.transaction():
            for name, tally in zip(names, self._held(names, self.clock()), strict=True):
                _end_one(tally)
                self._put(name, tally)

    def failed(self, username: str, address: str | None = None) -> None:
        now = self.clock()
        keys = self._keys(username, address)
        names = [self._name(k) for k, _ in keys]
        with self.store.transaction():
            for (key, limit), name, tally in zip(keys, names, self._held(names, now), strict=True):
                _end_one(tally)
                self._count(key, tally, limit, now)
                self._put(name, tally)
            self.store.forget_sign_in_tallies(
                idle_before=now - self.forget_s, busy_since=now - self.attempt_timeout_s
            )

    def succeeded(self, username: str, address: str | None = None) -> None:
        pair, where = (self._name(key) for key, _ in self._keys(username, address))
        with self.store.transaction():
            (tally,) = self._held([where], self.clock())
            _end_one(tally)
            self._put(where, tally)
            self.store.forget_sign_in_tallies([pair])
