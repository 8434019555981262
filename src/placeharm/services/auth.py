"""Local user accounts (argon2id password hashes) and sessions (random tokens, stored hashed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from placeharm.errors import DataError, PermissionDenied
from placeharm.services.policy import Role, User
from placeharm.store.base import Store

SESSION_HOURS = 10  # one shift
_HASHER = PasswordHasher()
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
# The password_hash of a single sign-on account: not an argon2 hash, so no password verifies.
NO_PASSWORD = "!sso: signs in with the identity provider only"


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
        existing = store.user(username)
        if existing is not None and existing.get("auth_source", "local") != "local":
            # never turn a single sign-on account into a password one (docs/security/sso.md)
            raise DataError(
                f"{username} is a single sign-on account; its role comes from the identity "
                "provider's groups. Choose another username for a local account"
            )
        store.upsert_user(username, display_name, role.value, _HASHER.hash(password), demo)
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
    (argon2id): call it without holding the store lock."""
    refused = PermissionDenied("wrong username or password")
    if (
        record is None
        or record["disabled"]
        or (record["demo"] and real_data)
        or record.get("auth_source", "local") != "local"  # single sign-on accounts
    ):
        _HASHER.hash(password)  # spend the same time as a real check
        raise refused
    try:
        _HASHER.verify(record["password_hash"], password)
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
