"""Local user accounts (argon2id password hashes) and sessions (random tokens, stored hashed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from placeharm.errors import Busy, DataError, PermissionDenied
from placeharm.services.policy import Role, User
from placeharm.store.base import Store

SESSION_HOURS = 10  # one shift
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
}
DEMO_PASSWORD_SUFFIX = "-demo-2026"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    store: Store,
    username: str,
    display_name: str,
    role: Role | str,
    password: str,
    demo: bool = False,
) -> User:
    if len(password) < 12:
        raise DataError("a password needs at least 12 characters")
    if not username.replace("_", "").replace("-", "").isalnum():
        raise DataError("a username is letters, digits, '-' and '_'")
    role = Role(role)
    with store.transaction():
        store.upsert_user(username, display_name, role.value, _hash(password), demo)
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


def check_password(record: dict[str, Any] | None, password: str, real_data: bool) -> None:
    """Raise the same refusal for every wrong case (unknown user, disabled, wrong password,
    a demo account on a store holding a force's real SOC records). Slow on purpose
    (argon2id): call it without holding the store lock. Raises Busy when too many hashes
    are already being computed (HashGate)."""
    refused = PermissionDenied("wrong username or password")
    if record is None or record["disabled"] or (record["demo"] and real_data):
        _hash(password)  # spend the same time as a real check
        raise refused
    try:
        _verify(record["password_hash"], password)
    except (VerificationError, InvalidHashError):
        raise refused from None


def start_session(store: Store, username: str) -> str:
    token = secrets.token_urlsafe(32)
    now = _now()
    with store.transaction():
        store.purge_sessions(now)  # expired sessions are not kept
        store.add_session(_token_hash(token), username, now + dt.timedelta(hours=SESSION_HOURS))
    return token


def login(store: Store, username: str, password: str) -> str:
    """A new session token for the right password (see `check_password`)."""
    check_password(store.user(username), password, store.real_soc_records() > 0)
    return start_session(store, username)


class LoginThrottle:
    """At most `limit` failed sign-ins per username in `window` seconds, then a pause."""

    def __init__(self, limit: int = 5, window: float = 900.0, max_names: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_names = max_names
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(username, []) if now - t < self.window]
            self._failures[username] = recent
            if len(recent) >= self.limit:
                raise PermissionDenied("too many failed sign-ins: wait 15 minutes")

    def failed(self, username: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures.setdefault(username, []).append(now)
            if len(self._failures) > self.max_names:
                # Forget names whose failures have all expired, so sign-ins with endless
                # made-up usernames cannot grow this without bound.
                self._failures = {
                    name: recent
                    for name, times in self._failures.items()
                    if (recent := [t for t in times if now - t < self.window])
                }

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._failures.pop(username, None)


def user_for(store: Store, token: str | None) -> User | None:
    if not token:
        return None
    username = store.session_user(_token_hash(token), _now())
    if username is None:
        return None
    record = store.user(username)
    if record is None or record["disabled"]:
        return None
    return User(record["username"], record["display_name"], Role(record["role"]))


def logout(store: Store, token: str | None) -> None:
    if token:
        with store.transaction():
            store.end_session(_token_hash(token))
