"""Walk the chain and say where it breaks; export entries as JSON lines for a SIEM.

Each entry's hash covers its content and the previous entry's hash, so:
- an edited entry no longer matches its own hash;
- a deleted entry leaves the next one pointing at a hash that is no longer stored;
- an inserted entry is not the one its successor points at;
- a moved entry points at an entry that is not the one stored before it.
Without an HMAC key, someone who can write the database could recompute every hash after
an edit; the HMAC (its key kept outside the database) and the syslog copies stop that.
"""

from __future__ import annotations

import datetime as dt
import hmac as hmac_lib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from placeharm.audit.entry import GENESIS, entry_hash, entry_hmac
from placeharm.audit.log import to_line
from placeharm.store.base import Store

_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of a walk: how many entries held, the newest one, and the first fault."""

    checked: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    problem_seq: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _stored(store: Store) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        batch = store.audit_entries(after, _BATCH)
        if not batch:
            return
        yield from batch
        after = int(batch[-1]["seq"])


def verify(store: Store, hmac_key: bytes | None = None, keyed_from: int = 1) -> VerifyReport:
    """Check every stored entry in sequence order (see `verify_entries`)."""
    return verify_entries(_stored(store), hmac_key, keyed_from, store.audit_seq_of_hash)


def verify_entries(
    entries: Iterable[dict[str, Any]],
    hmac_key: bytes | None = None,
    keyed_from: int = 1,
    seq_of_hash: Callable[[str], int | None] | None = None,
) -> VerifyReport:
    """Check a run of entries in sequence order, from the first ever written. With a key,
    every entry from `keyed_from` on must carry a matching HMAC. `seq_of_hash` finds where
    a hash is stored (to tell a moved entry from an inserted one)."""
    seen: dict[str, int] = {}
    lookup = seq_of_hash or seen.get
    prev_hash, prev_seq, checked = GENESIS, 0, 0

    def report(problem: str, seq: int) -> VerifyReport:
        return VerifyReport(checked, prev_seq, prev_hash, problem, seq)

    for entry in entries:
        seq = int(entry["seq"])
        if entry_hash(entry) != entry["entry_hash"]:
            return report(f"entry {seq} was edited: its content no longer matches its hash", seq)
        if seq == prev_seq:
            return report(f"entry {seq} appears twice: an entry was inserted", seq)
        if entry["prev_hash"] != prev_hash:
            points_at = lookup(entry["prev_hash"])
            if points_at is None:
                if prev_seq == 0:
                    gone = "the first entries were"
                elif seq - prev_seq > 2:
                    gone = f"entries {prev_seq + 1} to {seq - 1} were"
                elif seq - prev_seq == 2:
                    gone = f"entry {prev_seq + 1} was"
                else:
                    gone = f"an entry after entry {prev_seq} was"
                return report(
                    f"{gone} deleted: entry {seq} follows an entry that is no longer in the "
                    f"log (or entry {seq} was inserted)",
                    seq,
                )
            if points_at < prev_seq:
                return report(
                    f"entry {prev_seq} was inserted or moved: entry {seq} was written after "
                    f"entry {points_at}, not after entry {prev_seq}",
                    prev_seq,
                )
            return report(
                f"entries were reordered: entry {seq} was written after entry {points_at}, "
                f"which is now stored later",
                seq,
            )
        if seq != prev_seq + 1:
            return report(
                f"sequence numbers jump from {prev_seq} to {seq} although the chain holds: "
                "the numbers were edited",
                seq,
            )
        if hmac_key is not None and seq >= keyed_from:
            stored = entry.get("hmac")
            if not stored:
                return report(
                    f"entry {seq} has no HMAC although a key is configured: it was written "
                    "without the key, or its HMAC was removed",
                    seq,
                )
            if not hmac_lib.compare_digest(stored, entry_hmac(entry, hmac_key)):
                return report(
                    f"entry {seq}: its HMAC does not match: it was rewritten by someone "
                    "without the key, or the key configured is not the one it was written with",
                    seq,
                )
        if seq_of_hash is None:
            seen[entry["entry_hash"]] = seq
        prev_hash, prev_seq = entry["entry_hash"], seq
        checked += 1
    return VerifyReport(checked, prev_seq, prev_hash)


def export_lines(
    store: Store, out: TextIO, since: dt.datetime | None = None, until: dt.datetime | None = None
) -> int:
    """Write the entries logged in [since, until) as JSON lines; return how many."""
    after, written = 0, 0
    while True:
        batch = store.audit_entries(after, _BATCH, since, until)
        if not batch:
            return written
        for entry in batch:
            out.write(json.dumps(to_line(entry), ensure_ascii=False, sort_keys=True) + "\n")
            written += 1
        after = int(batch[-1]["seq"])
