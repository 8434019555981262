"""The audit log on a real store (the engine under test: a DuckDB file or a PostgreSQL
schema): the chain, tamper detection with raw SQL (edit,
delete, insert, reorder), the HMAC, JSON lines export, syslog over loopback UDP, entries that
commit or roll back with the caller's write, concurrent appends, and who imported."""

from __future__ import annotations

import datetime as dt
import getpass
import itertools
import json
import socket
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

import placeharm
from placeharm import audit
from placeharm.audit import Actor, AuditLog, Justification
from placeharm.audit.entry import COLUMNS, entry_hash
from placeharm.cli.main import app
from placeharm.errors import ConfigError, DataError
from placeharm.services import auth
from placeharm.soc.importer import import_entity
from placeharm.store.base import AUDIT_COLUMNS
from raw_sql import run_sql

KEY = "k" * 40
ANALYST = Actor("analyst1", "analyst", "10.0.0.5", None, Justification("investigation", "op X"))


def _fill(place: str, n: int = 8, log: AuditLog | None = None) -> None:
    log = log or AuditLog()
    with placeharm.open_store(place) as store:
        for i in range(n):
            log.record(
                store,
                ANALYST,
                "consultation",
                "nominal",
                "/nominal/{nominal_id}",
                fmt="html",
                record_ids={"nominal": [f"N{i}"]},
                query={"q": f"search {i}"},
                row_count=i,
                marking="OFFICIAL-SENSITIVE",
            )


def _sql(place: str, *statements: str) -> None:
    run_sql(place, *statements)  # as someone with access to the database could


def _verify(path: str, *args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["audit", "verify", "--db", str(path), *args], env=env)


@pytest.fixture()
def log_db(db_at) -> str:
    path = db_at("audit")
    _fill(path)
    return path


def test_an_untouched_log_verifies(log_db: str):
    result = _verify(log_db)
    assert result.exit_code == 0, result.output
    assert "8 entries verified" in result.output
    with placeharm.open_store(log_db) as store:
        rows = store.audit_entries()
    assert [r["seq"] for r in rows] == list(range(1, 9))
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["entry_hash"] for a, b in itertools.pairwise(rows))
    assert rows[3]["reason_code"] == "investigation" and rows[3]["reason_text"] == "op X"
    assert json.loads(rows[3]["record_ids"]) == {"nominal": ["N3"]}


def test_an_edited_entry_is_found(log_db: str):
    _sql(log_db, "UPDATE audit_log SET username = 'someone_else' WHERE seq = 4")
    result = _verify(log_db)
    assert result.exit_code == 6
    assert "entry 4 was edited" in result.output and "3 entries before it" in result.output


def test_a_deleted_entry_is_found(log_db: str):
    _sql(log_db, "DELETE FROM audit_log WHERE seq = 5")
    result = _verify(log_db)
    assert result.exit_code == 6 and "entry 5 was deleted" in result.output


def test_a_deleted_and_renumbered_entry_is_found(log_db: str):
    _sql(
        log_db,
        "DELETE FROM audit_log WHERE seq = 5",
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq > 5",
        "UPDATE audit_log SET seq = seq - 1001 WHERE seq > 1000",
    )
    result = _verify(log_db)
    assert result.exit_code == 6 and "an entry after entry 4 was deleted" in result.output


def test_an_inserted_entry_is_found(log_db: str):
    """A forged entry made to look right (correct previous hash, correct own hash) in the
    middle: the next entry still points past it."""
    with placeharm.open_store(log_db) as store:
        fourth = store.audit_entries(3, 1)[0]
    forged = dict(fourth, seq=5, username="forger", prev_hash=fourth["entry_hash"])
    forged["entry_hash"] = entry_hash(forged)
    _sql(
        log_db,
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5",
        "UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000",
    )
    with placeharm.open_store(log_db) as store:
        store.audit_append(forged)
    result = _verify(log_db)
    assert result.exit_code == 6
    assert "entry 5 was inserted or moved: entry 6 was written after entry 4" in result.output


def test_reordered_entries_are_found(log_db: str):
    _sql(
        log_db,
        "UPDATE audit_log SET seq = 100 WHERE seq = 5",
        "UPDATE audit_log SET seq = 5 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = 100",
    )
    result = _verify(log_db)
    assert result.exit_code == 6
    assert "reordered: entry 5 was written after entry 6" in result.output


def test_the_hmac_finds_a_rewritten_chain_and_a_wrong_key(db_at):
    """Without a key, someone who can write the file can recompute every hash; with one,
    the rewrite shows."""
    path = db_at("keyed")
    _fill(path, 5, AuditLog(KEY.encode()))
    env = {"PLACEHARM_AUDIT_HMAC_KEY": KEY}
    assert _verify(path, env=env).exit_code == 0
    wrong = _verify(path, env={"PLACEHARM_AUDIT_HMAC_KEY": "w" * 40})
    assert wrong.exit_code == 6 and "entry 1: its HMAC does not match" in wrong.output
    # rewrite entry 3 and recompute the hashes of 3..5 so the plain chain still holds
    with placeharm.open_store(path) as store:
        rows = store.audit_entries()
    prev = rows[1]["entry_hash"]
    statements = []
    for row in rows[2:]:
        row = dict(row, prev_hash=prev)
        if row["seq"] == 3:
            row["username"] = "someone_else"
        row["entry_hash"] = prev = entry_hash(row)
        statements.append(
            f"UPDATE audit_log SET username = '{row['username']}', prev_hash = "
            f"'{row['prev_hash']}', entry_hash = '{row['entry_hash']}' WHERE seq = {row['seq']}"
        )
    _sql(path, *statements)
    assert _verify(path).exit_code == 0  # the unkeyed chain cannot tell
    keyed = _verify(path, env=env)
    assert keyed.exit_code == 6 and "entry 3: its HMAC does not match" in keyed.output


def test_a_short_key_is_refused(db_at):
    result = _verify(db_at("x"), env={"PLACEHARM_AUDIT_HMAC_KEY": "short"})
    assert isinstance(result.exception, ConfigError) and "too short" in str(result.exception)


def test_export_writes_json_lines_that_verify_again(log_db: str, tmp_path: Path):
    out = tmp_path / "audit.jsonl"
    today = dt.datetime.now(dt.UTC).date()
    result = CliRunner().invoke(
        app,
        [
            "audit",
            "export",
            "--db",
            str(log_db),
            "--from",
            str(today),
            "--to",
            str(today),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 8 and lines[2]["record_ids"] == {"nominal": ["N2"]}
    assert lines[2]["query"] == {"q": "search 2"} and lines[2]["logged_at"].endswith("Z")
    entries = [audit.from_line(line) for line in lines]
    assert audit.verify_entries(entries).ok
    with placeharm.open_store(log_db) as store:
        stored = store.audit_entries()
        assert entries == stored[:8]
        # the export itself is a disclosure, logged after the lines were written
        assert stored[8]["action"] == "disclosure" and stored[8]["row_count"] == 8
        assert stored[8]["username"] == getpass.getuser()
    later = tmp_path / "none.jsonl"
    tomorrow = today + dt.timedelta(days=1)
    CliRunner().invoke(
        app, ["audit", "export", "--db", str(log_db), "--from", str(tomorrow), "--out", str(later)]
    )
    assert later.read_text() == ""
    entries[4]["username"] = "edited"
    report = audit.verify_entries(entries)
    assert not report.ok and report.problem_seq == 5


def test_entries_go_to_syslog_over_udp(tmp_path: Path, store_at):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    port = sock.getsockname()[1]
    log = AuditLog(syslog=f"udp://127.0.0.1:{port}")
    try:
        with store_at("s") as store:
            entry = log.record(store, ANALYST, "consultation", "ward", "/ward/{code}")
            with store.transaction():  # an entry in a write is sent once it commits
                second = log.record(store, ANALYST, "sign-in", "session", "/login")
        messages = [sock.recv(65536).decode() for _ in range(2)]
    finally:
        log.close()
        sock.close()
    for message, sent in zip(messages, (entry, second), strict=True):
        assert message.startswith("<")  # syslog priority
        body = json.loads(message.split("placeharm-audit: ", 1)[1].rstrip("\x00"))
        assert body["entry_hash"] == sent["entry_hash"] and body["username"] == "analyst1"


def test_an_entry_in_a_write_commits_or_rolls_back_with_it(tmp_path: Path, store_at):
    log = AuditLog()
    with store_at("s") as store:
        log.record(store, ANALYST, "consultation", "ward", "/ward/{code}")
        with pytest.raises(RuntimeError), store.transaction():
            store.upsert_user("u1", "U", "analyst", "x", demo=False)
            log.record(store, ANALYST, "alteration", "user", "users add")
            raise RuntimeError("the write fails")
        assert store.user("u1") is None and len(store.audit_entries()) == 1
        with store.transaction():
            store.upsert_user("u2", "U", "analyst", "x", demo=False)
            log.record(store, ANALYST, "alteration", "user", "users add")
            log.record(store, ANALYST, "alteration", "user", "users add")
        log.record(store, ANALYST, "consultation", "ward", "/ward/{code}")
        assert [e["seq"] for e in store.audit_entries()] == [1, 2, 3, 4]
        assert audit.verify(store).ok


def test_concurrent_appends_keep_one_chain(tmp_path: Path, store_at):
    log = AuditLog(KEY.encode())
    with store_at("s") as store:
        errors: list[BaseException] = []

        def work(n: int) -> None:
            try:
                for i in range(15):
                    if i % 5 == 0:
                        with store.transaction():
                            log.record(store, ANALYST, "alteration", "user", f"t{n}")
                    else:
                        log.record(store, ANALYST, "consultation", "ward", f"t{n}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        report = audit.verify(store, KEY.encode())
        assert report.ok and report.checked == 90 and report.head_seq == 90


def test_imports_say_who_imported(tmp_path: Path, store_at):
    csv = tmp_path / "groups.csv"
    csv.write_text("group_id,group_type\nG-A,OCG\n")
    with store_at("s") as store:
        uploader = Actor("admin1", "admin", "10.1.1.1")
        result = import_entity(store, "groups", csv, actor=uploader)
        import_entity(store, "groups", csv)  # the library or CLI: the operating-system user
        imports = store.imports().sort("import_id")
        assert imports["imported_by"].to_list() == ["admin1", getpass.getuser()]
        first = store.audit_entries()[0]
        assert first["action"] == "collection" and first["username"] == "admin1"
        assert json.loads(first["record_ids"]) == {"import": [str(result.import_id)]}
        assert json.loads(first["query"])["file"] == "groups.csv"
        assert first["client_address"] == "10.1.1.1" and first["row_count"] == 1


def test_users_add_is_logged(db_at):
    db = db_at("u")
    result = CliRunner().invoke(
        app,
        [
            "users",
            "add",
            "jo",
            "--role",
            "auditor",
            "--name",
            "Auditor",
            "--db",
            str(db),
            "--password",
            "a-long-password-2026",
        ],
    )
    assert result.exit_code == 0, result.output
    with placeharm.open_store(db) as store:
        entry = store.audit_entries()[-1]
    assert entry["action"] == "alteration" and json.loads(entry["record_ids"]) == {"user": ["jo"]}
    assert "a-long-password" not in json.dumps(entry, default=str)


def test_justification_rules():
    assert Justification.parse("safeguarding", "  child at risk \n ref 12 ") == Justification(
        "safeguarding", "child at risk ref 12"
    )
    with pytest.raises(DataError, match="choose a reason"):
        Justification.parse("curiosity", "x")
    with pytest.raises(DataError, match="needs the text"):
        Justification.parse("other", "  ")
    with pytest.raises(DataError, match="500 characters"):
        Justification.parse("investigation", "x" * 501)


def test_the_layers_agree():
    assert COLUMNS == AUDIT_COLUMNS
    assert audit.session_key("abc") == auth._token_hash("abc")


def test_cli_exports_and_the_quarantine_are_logged_disclosures(tmp_path: Path, db_at):
    """Commands that hand over records naming people (an entity export) or raw refused rows
    (the quarantine) are disclosures by the operating-system user, with the row count."""
    db = db_at("cli")
    nominals = tmp_path / "nominals.csv"
    nominals.write_text(
        "nominal_id,surname,date_of_birth\nREAL-1,Realperson,1990-01-01\n"
        "REAL-2,Otherperson,not-a-date\n"
    )
    with placeharm.open_store(db) as store:
        result = import_entity(store, "nominals", nominals)
        assert (result.inserted, result.quarantined) == (1, 1)
    runner = CliRunner()
    out = tmp_path / "out.csv"
    done = runner.invoke(app, ["export", "nominals", str(out), "--db", str(db)])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(app, ["quarantine", "--db", str(db), "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    with placeharm.open_store(db) as store:
        entries, _ = store.audit_search(None, None, None, None, "disclosure", 10)
        rows = {r["route"]: r for r in entries.to_dicts()}
        assert rows["placeharm export"]["row_count"] == 1
        assert json.loads(rows["placeharm export"]["query"]) == {
            "kind": "nominals",
            "file": "out.csv",
        }
        assert rows["placeharm quarantine"]["row_count"] == 1
        assert {r["username"] for r in rows.values()} == {getpass.getuser()}
        assert {r["marking"] for r in rows.values()} == {"OFFICIAL-SENSITIVE"}
        assert audit.verify(store).problem is None


def test_an_export_to_a_missing_folder_is_a_message_and_no_disclosure(tmp_path: Path, db_at):
    db = db_at("cli")
    with placeharm.open_store(db):
        pass
    runner = CliRunner()
    missing = tmp_path / "no-such-folder" / "out.csv"
    done = runner.invoke(app, ["export", "nominals", str(missing), "--db", str(db)])
    assert done.exit_code != 0 and isinstance(done.exception, (SystemExit, DataError))
    assert "cannot write" in str(done.exception) or "cannot write" in done.output
    with placeharm.open_store(db) as store:
        _, total = store.audit_search(None, None, None, None, "disclosure", 10)
        assert total == 0
