"""Local user accounts (argon2id password hashes) and sessions (random tokens, stored hashed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

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


def login(store: Store, username: str, password: str) -> str:
    """A new session token for the right password; the same refusal for every wrong case."""
    record = store.user(username)
    refused = PermissionDenied("wrong username or password")
    if record is None or record["disabled"]:
        _HASHER.hash(password)  # spend the same time as a real check
        raise refused
    try:
        _HASHER.verify(record["password_hash"], password)
    except (VerificationError, InvalidHashError):
        raise refused from None
    token = secrets.token_urlsafe(32)
    with store.transaction():
        store.add_session(_token_hash(token), username, _now() + dt.timedelta(hours=SESSION_HOURS))
    return token


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
