"""What an audit entry holds, who acts (`Actor`), why (`Justification`), and how an entry is
hashed: SHA-256 over its canonical JSON content and the previous entry's hash, plus an
HMAC-SHA256 of the same bytes when a key is configured."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import json
import socket
from dataclasses import dataclass
from typing import Any

from placeharm.errors import DataError
from placeharm.store.base import AUDIT_COLUMNS

GENESIS = "0" * 64  # the previous hash of the first entry
# What was done, in the words of DPA 2018 s.62 (collection, alteration, consultation,
# disclosure, erasure) plus sign-in/out and the statement of a justification.
ACTIONS = (
    "collection",
    "alteration",
    "consultation",
    "disclosure",
    "erasure",
    "sign-in",
    "sign-out",
    "justification",
)
# Why: the fixed list a user chooses from (free text is required for 'other').
REASONS = {
    "investigation": "Investigation",
    "safeguarding": "Safeguarding",
    "intelligence_development": "Intelligence development",
    "tasking_and_briefing": "Tasking and briefing",
    "audit_review": "Audit or review",
    "other": "Other (say what in the text)",
}
# What a justification is for; stated once per purpose and session.
PURPOSES = {
    "nominal": "opening nominal and exploitation records",
    "export": "downloading or exporting records that name people",
    "radius": "searching what is known around a place (radius search)",
}
MAX_REASON_TEXT = 500
MAX_VALUE = 200  # characters kept of one query value in an entry
# Every column of an entry, in storage order; the hash covers all but the last three.
COLUMNS = AUDIT_COLUMNS
HASHED = tuple(c for c in COLUMNS if c not in ("seq", "entry_hash", "hmac"))


@dataclass(frozen=True, slots=True)
class Justification:
    """A stated reason for a purpose: a code from `REASONS` and free text."""

    reason_code: str
    text: str

    @classmethod
    def parse(cls, reason_code: str | None, text: str | None) -> Justification:
        """Check a justification as a user stated it; DataError says what to fix."""
        code = (reason_code or "").strip()
        words = " ".join((text or "").split())  # one line: no control characters kept
        if code not in REASONS:
            raise DataError(f"choose a reason: one of {', '.join(REASONS)}")
        if code == "other" and not words:
            raise DataError("say what the reason is: 'other' needs the text")
        if len(words) > MAX_REASON_TEXT:
            raise DataError(f"keep the text to {MAX_REASON_TEXT} characters")
        return cls(code, words)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a signed-in user, the drop folder, or the operating-system user of the CLI.
    Made at the web and CLI boundaries and passed to everything that is audited."""

    username: str
    role: str
    address: str | None = None
    session: str | None = None  # the session token's hash (web): justifications live there
    justification: Justification | None = None

    @classmethod
    def cli(cls) -> Actor:
        """The person at the command line, as the operating system knows them."""
        try:
            name = getpass.getuser()
        except Exception:  # no login name (e.g. a container without a passwd entry)
            name = "unknown"
        return cls(name, "cli", f"local:{socket.gethostname()}")

    def with_justification(self, justification: Justification | None) -> Actor:
        return Actor(self.username, self.role, self.address, self.session, justification)


DROP_FOLDER = Actor("drop-folder", "system", "local")


def utc_now() -> dt.datetime:
    """Now in UTC, naive (as the store keeps timestamps), to the microsecond."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _plain(name: str, value: Any) -> Any:
    if name == "logged_at":
        assert isinstance(value, dt.datetime)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def content_bytes(entry: dict[str, Any]) -> bytes:
    """The bytes an entry's hash and HMAC cover: every field but seq, hash and HMAC, with
    the previous entry's hash among them (that is the chain)."""
    return canonical_json({k: _plain(k, entry[k]) for k in HASHED}).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(content_bytes(entry)).hexdigest()


def entry_hmac(entry: dict[str, Any], key: bytes) -> str:
    return hmac.new(key, content_bytes(entry), hashlib.sha256).hexdigest()


def clip(value: str) -> str:
    """A query value as kept in an entry: one line, at most MAX_VALUE characters."""
    text = " ".join(value.split())
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"
