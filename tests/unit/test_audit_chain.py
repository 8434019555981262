"""The audit chain at unit level (issue 19, mutation testing): what an entry's hash and HMAC
cover, what the chain walk says for each kind of tampering, and how entries are appended,
exported and read back. Expected hashes are computed in the test from hand-written JSON, not
by the code under test."""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import hmac
import importlib
import io
import json
import logging
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from placeharm import open_store
from placeharm.audit import entry as audit_entry
from placeharm.audit.entry import Actor, Justification
from placeharm.audit.log import AuditLog, from_line, hmac_key, to_line
from placeharm.audit.verify import VerifyReport, export_lines, verify, verify_entries
from placeharm.config import load_settings
from placeharm.errors import AuditError, ConfigError, DataError
from placeharm.store.duckdb import DuckDBStore
from raw_sql import run_sql

# the module, not the function `placeharm.audit.verify` that the package exports
audit_verify = importlib.import_module("placeharm.audit.verify")
GENESIS = "0" * 64
KEY = b"k" * 32
AT = dt.datetime(2026, 1, 2, 3, 4, 5, 6)


def _fields(n: int) -> dict[str, object]:
    """Entry n's content (no seq, hashes or HMAC), as a store would hold it."""
    return {
        "logged_at": AT + dt.timedelta(minutes=n),
        "username": f"user{n}",
        "role": "analyst",
        "client_address": "10.0.0.1",
        "action": "consultation",
        "page": "ward",
        "route": f"/ward/E0500{n}",
        "format": None,
        "record_ids": '{"ward":["E05001111"]}',
        "query": "{}",
        "row_count": n,
        "marking": "OFFICIAL-SENSITIVE",
        "reason_code": None,
        "reason_text": None,
        "outcome": "ok",
    }


def _hashed_bytes(entry: dict[str, object]) -> bytes:
    """The hashed content worked out here: sorted keys, no spaces, the time in ISO with Z."""
    content = {k: v for k, v in entry.items() if k not in ("seq", "entry_hash", "hmac")}
    stamp = content["logged_at"]
    assert isinstance(stamp, dt.datetime)
    content["logged_at"] = stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _chain(n: int, key: bytes | None = None) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    prev = GENESIS
    for i in range(1, n + 1):
        e: dict[str, object] = {"seq": i, **_fields(i), "prev_hash": prev}
        e["entry_hash"] = hashlib.sha256(_hashed_bytes(e)).hexdigest()
        e["hmac"] = hmac.new(key, _hashed_bytes(e), hashlib.sha256).hexdigest() if key else None
        prev = str(e["entry_hash"])
        out.append(e)
    return out


def _seq_of(entries: list[dict[str, object]]):
    stored = {str(e["entry_hash"]): int(str(e["seq"])) for e in entries}
    return stored.get


# -- entry.py ----------------------------------------------------------------------------


def test_content_bytes_are_sorted_compact_json_of_every_field_but_seq_and_hashes():
    e = {
        "seq": 7,
        "logged_at": dt.datetime(2026, 1, 2, 3, 4, 5, 6),
        "username": "ann",
        "role": "analyst",
        "client_address": None,
        "action": "consultation",
        "page": "ward",
        "route": "/ward/E05001111",
        "format": None,
        "record_ids": "{}",
        "query": '{"q":"Café"}',
        "row_count": 3,
        "marking": None,
        "reason_code": None,
        "reason_text": None,
        "outcome": "ok",
        "prev_hash": GENESIS,
        "entry_hash": "ignored",
        "hmac": "ignored",
    }
    text = (
        '{"action":"consultation","client_address":null,"format":null,'
        '"logged_at":"2026-01-02T03:04:05.000006Z","marking":null,"outcome":"ok","page":"ward",'
        f'"prev_hash":"{GENESIS}","query":"{{\\"q\\":\\"Café\\"}}","reason_code":null,'
        '"reason_text":null,"record_ids":"{}","role":"analyst","route":"/ward/E05001111",'
        '"row_count":3,"username":"ann"}'
    )
    assert audit_entry.content_bytes(e) == text.encode("utf-8")
    assert audit_entry.entry_hash(e) == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert audit_entry.entry_hmac(e, KEY) == hmac.new(KEY, text.encode(), "sha256").hexdigest()
    # the previous hash is covered: that is the chain
    other = {**e, "prev_hash": "1" * 64}
    assert audit_entry.entry_hash(other) != audit_entry.entry_hash(e)


def test_canonical_json_is_sorted_compact_and_keeps_non_ascii():
    assert audit_entry.canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'


def test_clip_keeps_one_line_of_at_most_200_characters():
    assert audit_entry.clip("  a \n b\tc  ") == "a b c"
    assert audit_entry.clip("x" * 200) == "x" * 200
    assert audit_entry.clip("x" * 201) == "x" * 199 + "…"
    assert len(audit_entry.clip("y" * 500)) == 200


def test_justification_parse():
    assert Justification.parse(" safeguarding ", "  child at risk \n ref 12 ") == Justification(
        "safeguarding", "child at risk ref 12"
    )
    assert Justification.parse("other", "x" * 500) == Justification("other", "x" * 500)
    assert Justification.parse("investigation", None) == Justification("investigation", "")
    with pytest.raises(DataError) as bad:
        Justification.parse(None, "x")
    assert str(bad.value) == (
        "choose a reason: one of investigation, safeguarding, intelligence_development, "
        "tasking_and_briefing, audit_review, other"
    )
    with pytest.raises(DataError) as bad:
        Justification.parse("other", " \n ")
    assert str(bad.value) == "say what the reason is: 'other' needs the text"
    with pytest.raises(DataError) as bad:
        Justification.parse("investigation", "x" * 501)
    assert str(bad.value) == "keep the text to 500 characters"


def test_actor_at_the_command_line_and_with_a_justification():
    actor = Actor.cli()
    assert actor == Actor(getpass.getuser(), "cli", f"local:{socket.gethostname()}")
    why = Justification("investigation", "op x")
    stated = Actor("ann", "analyst", "10.0.0.1", "s1").with_justification(why)
    assert stated == Actor("ann", "analyst", "10.0.0.1", "s1", why)


def test_actor_at_the_command_line_without_a_login_name(monkeypatch: pytest.MonkeyPatch):
    def no_name() -> str:
        raise OSError("no login name")  # as in a container without a passwd entry

    monkeypatch.setattr(getpass, "getuser", no_name)
    assert Actor.cli() == Actor("unknown", "cli", f"local:{socket.gethostname()}")


def test_utc_now_is_naive_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")  # UTC+05:30 all year
    time.tzset()
    try:
        before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        now = audit_entry.utc_now()
        after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert now.tzinfo is None
    assert before <= now <= after


# -- verify.py ---------------------------------------------------------------------------


def test_an_intact_chain_verifies():
    chain = _chain(5)
    report = verify_entries(chain)
    assert report == VerifyReport(5, 5, str(chain[-1]["entry_hash"]))
    assert report.ok
    assert verify_entries([]) == VerifyReport(0, 0, GENESIS)
    assert verify_entries(chain, seq_of_hash=_seq_of(chain)).ok


def test_an_edited_entry():
    chain = _chain(4)
    chain[2]["username"] = "someone else"
    report = verify_entries(chain)
    assert report == VerifyReport(
        2,
        2,
        str(chain[1]["entry_hash"]),
        "entry 3 was edited: its content no longer matches its hash",
        3,
    )
    assert not report.ok


def test_an_entry_stored_twice():
    chain = _chain(3)
    report = verify_entries([chain[0], chain[1], chain[1], chain[2]])
    assert report.problem == "entry 2 appears twice: an entry was inserted"
    assert (report.problem_seq, report.checked, report.head_seq) == (2, 2, 2)


@pytest.mark.parametrize(
    ("kept", "gone", "seq"),
    [
        ([2, 3], "the first entries were", 2),
        ([1, 2, 5, 6], "entries 3 to 4 were", 5),
        ([1, 2, 6], "entries 3 to 5 were", 6),
        ([1, 2, 4], "entry 3 was", 4),
    ],
)
def test_deleted_entries(kept: list[int], gone: str, seq: int):
    chain = _chain(6)
    report = verify_entries([chain[i - 1] for i in kept])
    assert report.problem == (
        f"{gone} deleted: entry {seq} follows an entry that is no longer in the log (or "
        f"entry {seq} was inserted)"
    )
    assert report.problem_seq == seq


def test_a_deleted_entry_hidden_by_renumbering():
    chain = _chain(3)
    third = {**chain[2], "seq": 2}  # seq is not hashed: renumbering keeps the hash
    report = verify_entries([chain[0], third])
    assert report.problem == (
        "an entry after entry 1 was deleted: entry 2 follows an entry that is no longer in the "
        "log (or entry 2 was inserted)"
    )
    assert (report.problem_seq, report.checked, report.head_seq) == (2, 1, 1)
    assert report.head_hash == chain[0]["entry_hash"]


def test_an_inserted_entry():
    chain = _chain(3)
    forged: dict[str, object] = {"seq": 3, **_fields(9), "prev_hash": chain[1]["entry_hash"]}
    forged["entry_hash"] = hashlib.sha256(_hashed_bytes(forged)).hexdigest()
    moved = {**chain[2], "seq": 4}
    stored = [chain[0], chain[1], forged, moved]
    for lookup in (None, _seq_of(stored)):
        report = verify_entries(stored, seq_of_hash=lookup)
        assert report.problem == (
            "entry 3 was inserted or moved: entry 4 was written after entry 2, not after entry 3"
        )
        assert (report.problem_seq, report.checked, report.head_seq) == (3, 3, 3)
        assert report.head_hash == forged["entry_hash"]


def test_reordered_entries():
    chain = _chain(3)
    stored = [chain[0], {**chain[2], "seq": 2}, {**chain[1], "seq": 3}]
    report = verify_entries(stored, seq_of_hash=_seq_of(stored))
    assert report.problem == (
        "entries were reordered: entry 2 was written after entry 3, which is now stored later"
    )
    assert (report.problem_seq, report.checked) == (2, 1)


def test_renumbered_entries():
    chain = _chain(2)
    report = verify_entries([chain[0], {**chain[1], "seq": 5}])
    assert report.problem == (
        "sequence numbers jump from 1 to 5 although the chain holds: the numbers were edited"
    )
    assert report.problem_seq == 5


def test_the_hmac_from_the_keyed_entry_on():
    chain = _chain(4, KEY)
    assert verify_entries(chain, KEY).ok
    assert verify_entries(chain, KEY, keyed_from=4).ok
    unkeyed = _chain(4)  # written without a key until entry 3
    for e in unkeyed[2:]:
        e["hmac"] = hmac.new(KEY, _hashed_bytes(e), hashlib.sha256).hexdigest()
    assert verify_entries(unkeyed, KEY, keyed_from=3) == VerifyReport(
        4, 4, str(unkeyed[-1]["entry_hash"])
    )
    report = verify_entries(unkeyed, KEY, keyed_from=2)
    assert report.problem == (
        "entry 2 has no HMAC although a key is configured: it was written without the key, or "
        "its HMAC was removed"
    )
    assert (report.problem_seq, report.checked) == (2, 1)
    assert verify_entries(unkeyed, KEY).problem_seq == 1  # from the first entry by default
    assert verify_entries(unkeyed).ok  # no key: the chain only


def test_a_wrong_hmac():
    chain = _chain(3, KEY)
    report = verify_entries(chain, b"w" * 32)
    assert report.problem == (
        "entry 1: its HMAC does not match: it was rewritten by someone without the key, or the "
        "key configured is not the one it was written with"
    )
    assert (report.problem_seq, report.checked, report.head_seq) == (1, 0, 0)
    chain[1]["hmac"] = "0" * 64
    assert verify_entries(chain, KEY).problem_seq == 2


# -- log.py: lines, keys and appends -----------------------------------------------------


def test_an_entry_as_a_json_line_and_back():
    e = {"seq": 1, **_fields(1), "prev_hash": GENESIS, "entry_hash": "h", "hmac": None}
    line = to_line(e)
    assert line["logged_at"] == "2026-01-02T03:05:05.000006Z"
    assert line["record_ids"] == {"ward": ["E05001111"]}
    assert line["query"] == {}
    assert line["username"] == "user1"
    assert e["record_ids"] == '{"ward":["E05001111"]}'  # the entry itself is unchanged
    back = from_line(json.loads(json.dumps(line)))
    assert back == e
    assert from_line({**line, "query": {"b": 1, "a": "é"}})["query"] == '{"a":"é","b":1}'


def test_the_hmac_key_from_settings(tmp_path: Path):
    assert hmac_key(load_settings()) is None
    assert hmac_key(load_settings(audit_hmac_key="s" * 32)) == b"s" * 32
    key_file = tmp_path / "key"
    key_file.write_bytes(b"  " + b"f" * 32 + b"\n")
    assert hmac_key(load_settings(audit_hmac_key_file=key_file)) == b"f" * 32
    both = load_settings(audit_hmac_key="s" * 32, audit_hmac_key_file=key_file)
    assert hmac_key(both) == b"s" * 32
    with pytest.raises(ConfigError) as short:
        hmac_key(load_settings(audit_hmac_key="s" * 31))
    assert str(short.value) == (
        "the audit HMAC key is too short: use at least 32 characters, e.g. the output of "
        "`python -c 'import secrets; print(secrets.token_hex(32))'`"
    )
    key_file.write_bytes(b"f" * 31 + b"\n")  # 31 once the newline is stripped
    with pytest.raises(ConfigError, match="too short"):
        hmac_key(load_settings(audit_hmac_key_file=key_file))
    with pytest.raises(ConfigError) as missing:
        hmac_key(load_settings(audit_hmac_key_file=tmp_path / "absent"))
    assert str(missing.value) == (
        "the audit_hmac_key_file setting names a file that cannot be read; check that it "
        "exists and that placeharm may read it"
    )


def test_appended_entries_chain_verify_and_export(store_at):
    store = store_at("a")
    log = AuditLog(hmac_key=KEY)
    why = Justification("safeguarding", "child at risk")
    ann = Actor("ann", "analyst", "10.0.0.1", "s1", why)
    try:
        first = log.record(
            store,
            ann,
            "consultation",
            "ward",
            "/ward/E05001111",
            fmt="json",
            record_ids={"ward": ["E05001111"]},
            query={"month": "2024-01"},
            row_count=4,
            marking="OFFICIAL-SENSITIVE",
        )
        other = Justification("investigation", "op y")
        second = log.record(
            store, ann, "disclosure", "export", "/export", justification=other, outcome="refused"
        )
        with store.transaction():  # inside a writer's transaction: same chain
            third = log.record(store, Actor("bob", "admin"), "alteration", "users", "/users")
        assert (first["seq"], second["seq"], third["seq"]) == (1, 2, 3)
        assert first["prev_hash"] == GENESIS
        assert second["prev_hash"] == first["entry_hash"]
        assert third["prev_hash"] == second["entry_hash"]
        for e in (first, second, third):
            assert e["entry_hash"] == hashlib.sha256(_hashed_bytes(e)).hexdigest()
            assert e["hmac"] == hmac.new(KEY, _hashed_bytes(e), hashlib.sha256).hexdigest()
        assert {k: first[k] for k in ("username", "role", "client_address", "action")} == {
            "username": "ann",
            "role": "analyst",
            "client_address": "10.0.0.1",
            "action": "consultation",
        }
        assert (first["page"], first["route"], first["format"]) == (
            "ward",
            "/ward/E05001111",
            "json",
        )
        assert (first["record_ids"], first["query"]) == (
            '{"ward":["E05001111"]}',
            '{"month":"2024-01"}',
        )
        assert (first["row_count"], first["marking"], first["outcome"]) == (
            4,
            "OFFICIAL-SENSITIVE",
            "ok",
        )
        assert (first["reason_code"], first["reason_text"]) == ("safeguarding", "child at risk")
        assert (second["reason_code"], second["reason_text"]) == ("investigation", "op y")
        assert (second["record_ids"], second["query"], second["outcome"]) == ("{}", "{}", "refused")
        assert (second["format"], second["row_count"], second["marking"]) == (None, None, None)
        assert (third["reason_code"], third["reason_text"]) == (None, None)
        assert third["hmac"] is not None
        with pytest.raises(ValueError, match="unknown audit action 'looking'"):
            log.record(store, ann, "looking", "ward", "/ward")

        report = verify(store, KEY)
        assert report == VerifyReport(3, 3, third["entry_hash"])
        assert verify(store, b"w" * 32).problem_seq == 1
        out = io.StringIO()
        assert export_lines(store, out) == 3
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert [x["seq"] for x in lines] == [1, 2, 3]
        assert verify_entries([from_line(x) for x in lines], KEY).ok
        later = io.StringIO()
        assert export_lines(store, later, since=second["logged_at"]) == 2
        assert export_lines(store, io.StringIO(), until=second["logged_at"]) == 1
        assert AuditLog().record(store, ann, "sign-out", "login", "/logout")["hmac"] is None
    finally:
        store.close()


def test_the_store_is_read_in_batches_and_its_order_checked(db_at, monkeypatch: pytest.MonkeyPatch):
    path = db_at("a")
    store = open_store(path)
    log = AuditLog()
    try:
        made = [
            log.record(store, Actor("ann", "analyst"), "consultation", "ward", f"/ward/{i}")
            for i in range(5)
        ]
        last = log.record(
            store, Actor("zoë", "analyst"), "consultation", "ward", "/ward", query={"q": "Café"}
        )
        monkeypatch.setattr(audit_verify, "_BATCH", 2)  # 6 entries: three batches
        assert verify(store) == VerifyReport(6, 6, last["entry_hash"])
        out = io.StringIO()
        assert export_lines(store, out) == 6
        lines = out.getvalue().splitlines()
        assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3, 4, 5, 6]
        # one JSON object a line, keys sorted, text kept as written (not \\u escapes)
        assert lines[5].startswith('{"action": "consultation", "client_address": null, ')
        assert '"query": {"q": "Café"}' in lines[5]
        assert '"username": "zoë"' in lines[5]
    finally:
        store.close()
    run_sql(  # swap entries 4 and 5, as someone with access to the database could
        path,
        "UPDATE audit_log SET seq = 100 WHERE seq = 4",
        "UPDATE audit_log SET seq = 4 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 100",
    )
    store = open_store(path)
    try:
        report = verify(store)
        assert report.problem == (
            "entries were reordered: entry 4 was written after entry 5, which is now stored later"
        )
        assert (report.problem_seq, report.checked, report.head_hash) == (
            4,
            3,
            made[2]["entry_hash"],
        )
    finally:
        store.close()


def test_entries_in_writers_transactions_commit_roll_back_and_reach_syslog(store_at):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    store = store_at("a")
    log = AuditLog(syslog=f"udp://127.0.0.1:{receiver.getsockname()[1]}")
    ann = Actor("ann", "analyst")

    def sent() -> dict[str, object]:
        text = receiver.recv(65536).decode()
        assert text.startswith("<86>placeharm-audit: {")  # authpriv.info
        return json.loads(text.removeprefix("<86>placeharm-audit: ").rstrip("\x00"))

    try:
        with store.transaction():
            one = log.record(store, ann, "alteration", "users", "/users")
            two = log.record(store, ann, "alteration", "users", "/users")
        assert [sent()["seq"], sent()["seq"]] == [1, 2]
        assert two["prev_hash"] == one["entry_hash"]
        with pytest.raises(RuntimeError), store.transaction():
            log.record(store, ann, "alteration", "users", "/users")
            raise RuntimeError("the write fails")
        with store.transaction():  # the same thread's next transaction
            three = log.record(store, ann, "alteration", "users", "/users")
        assert (three["seq"], three["prev_hash"]) == (3, two["entry_hash"])
        assert sent() == to_line(three)  # the rolled-back entry was never sent

        # a writer whose transaction began before a read's entry was committed
        began, recorded = threading.Event(), threading.Event()
        out: dict[str, object] = {}

        def writer() -> None:
            try:
                with store.transaction():
                    # its snapshot: up to entry 3 (a plain read: audit_head in a transaction
                    # is the chain's own step, which on PostgreSQL takes the log's lock)
                    assert len(store.audit_entries()) == 3
                    began.set()
                    recorded.wait(10)
                    out["entry"] = log.record(store, ann, "alteration", "users", "/users")
            except BaseException as exc:
                out["error"] = exc

        thread = threading.Thread(target=writer)
        thread.start()
        began.wait(10)
        four = log.record(store, ann, "consultation", "ward", "/ward")
        recorded.set()
        thread.join(30)
        assert "error" not in out
        five = out["entry"]
        assert isinstance(five, dict)
        assert (four["seq"], five["seq"]) == (4, 5)
        assert five["prev_hash"] == four["entry_hash"]
        assert verify(store) == VerifyReport(5, 5, five["entry_hash"])
    finally:
        log.close()
        store.close()
        receiver.close()


def test_a_failed_write_is_refused_and_logged(store_at, caplog: pytest.LogCaptureFixture):
    store = store_at("a")
    log = AuditLog()
    log.record(store, Actor("ann", "analyst"), "consultation", "ward", "/ward")
    store.close()
    with (
        caplog.at_level(logging.ERROR, logger="placeharm.audit.log"),
        pytest.raises(AuditError) as refused,
    ):
        log.record(store, Actor("ann", "analyst"), "consultation", "ward", "/ward")
    assert str(refused.value) == (
        "the audit log could not be written, so this was refused; try again, and tell the "
        "system administrator if it keeps happening"
    )
    [logged] = [r for r in caplog.records if r.name == "placeharm.audit.log"]
    assert logged.getMessage() == "the audit log could not be written"
    assert logged.exc_info is not None


def test_each_store_file_has_its_own_chain(store_at):
    first, second = store_at("a"), store_at("b")
    log = AuditLog()
    ann = Actor("ann", "analyst")
    try:
        log.record(first, ann, "consultation", "ward", "/ward")
        log.record(first, ann, "consultation", "ward", "/ward")
        with second.transaction():
            other = log.record(second, ann, "alteration", "users", "/users")
        assert (other["seq"], other["prev_hash"]) == (1, GENESIS)
        assert verify(second).ok
    finally:
        first.close()
        second.close()


@pytest.mark.duckdb_only(
    reason="copies the store's file as a restored backup would be; a PostgreSQL store is "
    "restored with the server's own tools, and another process's entries on one PostgreSQL "
    "store (the same case for the chain) are pinned by "
    "test_another_writers_entries_and_a_rolled_back_pair on both engines"
)
def test_a_copied_store_continues_its_chain(tmp_path: Path):
    """A store file this process has not appended to (a restored backup, another process's
    writes) is read for its head: the chain goes on from the newest stored entry."""
    store = DuckDBStore(tmp_path / "a.duckdb")
    log = AuditLog()
    ann = Actor("ann", "analyst")
    made = [log.record(store, ann, "consultation", "ward", "/ward") for _ in range(2)]
    store.close()
    shutil.copy(tmp_path / "a.duckdb", tmp_path / "copy.duckdb")
    copy = DuckDBStore(tmp_path / "copy.duckdb")
    try:
        third = log.record(copy, ann, "consultation", "ward", "/ward")
        assert (third["seq"], third["prev_hash"]) == (3, made[1]["entry_hash"])
        with copy.transaction():
            fourth = log.record(copy, ann, "alteration", "users", "/users")
        assert (fourth["seq"], fourth["prev_hash"]) == (4, third["entry_hash"])
        assert verify(copy) == VerifyReport(4, 4, fourth["entry_hash"])
    finally:
        copy.close()


def test_another_writers_entries_and_a_rolled_back_pair(store_at):
    store = store_at("a")
    log = AuditLog()
    ann = Actor("ann", "analyst")
    try:
        one = log.record(store, ann, "consultation", "ward", "/ward")
        two = log.record(store, ann, "consultation", "ward", "/ward")
        # entry 3 written by another process sharing the store (not through this AuditLog)
        three: dict[str, object] = {"seq": 3, **_fields(3), "prev_hash": two["entry_hash"]}
        three["entry_hash"] = hashlib.sha256(_hashed_bytes(three)).hexdigest()
        three["hmac"] = None
        store.audit_append(three)
        with store.transaction():
            four = log.record(store, ann, "alteration", "users", "/users")
        assert (four["seq"], four["prev_hash"]) == (4, three["entry_hash"])
        # two entries in one transaction, rolled back together
        with pytest.raises(RuntimeError), store.transaction():
            log.record(store, ann, "alteration", "users", "/users")
            log.record(store, ann, "alteration", "users", "/users")
            raise RuntimeError("the write fails")
        with store.transaction():
            five = log.record(store, ann, "alteration", "users", "/users")
        assert (five["seq"], five["prev_hash"]) == (5, four["entry_hash"])
        assert verify(store) == VerifyReport(5, 5, five["entry_hash"])
        assert one["seq"] == 1
    finally:
        store.close()
