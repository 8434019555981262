"""Failures end in a message, never a traceback or a dead thread: a native library's panic
(pyo3's PanicException) is a BaseException, which `except Exception` misses (DESIGN.md §5)."""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from polars.exceptions import PanicException

import placeharm
import placeharm.cli.main as cli
from placeharm.config import load_settings
from placeharm.services import ingest as ingest_service
from placeharm.soc import importer as soc_importer
from placeharm.web.app import create_app

from .conftest import csrf_headers, sign_in


def test_the_cli_turns_a_panic_into_a_message_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    def panics() -> None:
        raise PanicException("assertion failed: i < self.len()")

    monkeypatch.setattr(cli, "app", panics)
    monkeypatch.setattr(sys, "argv", ["placeharm", "ingest", "x.csv"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 1
    said = capsys.readouterr()
    assert "unexpected failure" in said.err and "PanicException" in said.err
    assert "Traceback" not in said.err + said.out
    found = re.search(r"(\S*placeharm-error-\S*?\.txt)", said.err)
    assert found, said.err
    details = Path(found.group(1))
    try:
        assert "assertion failed: i < self.len()" in details.read_text()  # kept for a report
    finally:
        details.unlink(missing_ok=True)


def test_a_keyboard_interrupt_is_not_swallowed(monkeypatch: pytest.MonkeyPatch):
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli.main()


def _slice(northumbria: Path, folder: Path, month: str, rows: int = 200) -> Path:
    """The first `rows` rows of a real street file, named as police.uk names it."""
    with gzip.open(northumbria / f"{month}-northumbria-street.csv.gz", "rt") as handle:
        lines = [next(handle) for _ in range(rows + 1)]
    path = folder / f"{month}-northumbria-street.csv"
    path.write_text("".join(lines))
    return path


def _panics_on(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Reading the file called `name` raises pyo3's real PanicException (as polars' Rust
    code did on some bad rows, issue 13); other files are read as usual."""
    real = ingest_service.parse_file

    def parse_file(path: Path, *args: object, **kwargs: object) -> object:
        if Path(path).name == name:
            raise PanicException("assertion failed: i < self.len()")
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest_service, "parse_file", parse_file)


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str):
    monkeypatch.setattr(sys, "argv", ["placeharm", *argv])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    said = capsys.readouterr()
    return ended.value.code, said.out + said.err


def test_cli_ingest_with_a_panicking_file_imports_the_others_without_a_traceback(
    northumbria: Path, tmp_path: Path, monkeypatch, capsys, db_at
):
    files = [_slice(northumbria, tmp_path, m) for m in ("2020-05", "2020-06", "2020-07")]
    _panics_on(monkeypatch, files[1].name)
    db = db_at("cli")
    code, said = _run(monkeypatch, capsys, "ingest", *map(str, files), "--db", db)
    assert code == 2  # docs/cli.md: a file refused or failed in ingest
    assert "2 of 3 files imported" in said and "PanicException" in said
    assert "Traceback" not in said
    code, said = _run(monkeypatch, capsys, "imports", "--db", db, "--format", "csv")
    assert code in (0, None)
    log = pl.read_csv(said.encode())
    assert sorted(log["status"]) == ["failed", "ok", "ok"]
    # --debug: the same failure with its traceback (from the log)
    code, said = _run(monkeypatch, capsys, "--debug", "ingest", str(files[1]), "--db", db)
    assert code == 2 and "Traceback" in said and "PanicException" in said


@pytest.mark.parametrize("how", ["flag", "env", "none"])
def test_a_traceback_only_with_debug(db_at, monkeypatch, capsys, how: str):
    def panics(paths: object) -> list[Path]:
        raise PanicException("assertion failed: i < self.len()")

    monkeypatch.setattr(cli.ingest_service, "find_files", panics)
    argv = ["ingest", "x.csv", "--db", db_at("d")]
    if how == "flag":
        argv.insert(0, "--debug")
    if how == "env":
        monkeypatch.setenv("PLACEHARM_DEBUG", "true")
    code, said = _run(monkeypatch, capsys, *argv)
    assert code == 1 and "unexpected failure" in said and "PanicException" in said
    if how == "none":
        assert "Traceback" not in said
        details = Path(re.search(r"(\S*placeharm-error-\S*?\.txt)", said).group(1))  # type: ignore[union-attr]
        assert "Traceback" in details.read_text()
        details.unlink()
    else:
        assert "Traceback" in said and "placeharm-error-" not in said


def test_a_refusal_exits_with_its_code_and_a_traceback_only_with_debug(
    tmp_path: Path, monkeypatch, capsys, db_at
):
    db = db_at("d")
    code, said = _run(monkeypatch, capsys, "ingest", str(tmp_path / "missing.csv"), "--db", db)
    assert code == 2 and "does not exist" in said and "Traceback" not in said
    code, said = _run(monkeypatch, capsys, "--debug", "counts", "--by", "nowhere", "--db", db)
    assert code == 3 and "Traceback" in said


def _boom_app(db: str):
    app = create_app(load_settings(db=db))

    # test-only routes on this app instance: a native panic in a page and in an API route
    @app.get("/boom", include_in_schema=False)
    def boom_page() -> None:
        raise PanicException("assertion failed: i < self.len()")

    @app.get("/api/boom", include_in_schema=False)
    async def boom_api() -> None:
        raise PanicException("assertion failed: i < self.len()")

    @app.get("/api/bug", include_in_schema=False)
    def bug() -> None:
        raise ZeroDivisionError("a bug")

    return app


def test_a_panic_in_a_route_is_a_500_with_an_incident_and_no_traceback(web_db: str, caplog):
    # its requests are refused before they read: another app on the shared demo store
    with TestClient(_boom_app(web_db)) as client, caplog.at_level(logging.ERROR, "placeharm.web"):
        for path in ("/api/boom", "/api/bug"):
            answer = client.get(path)
            assert answer.status_code == 500
            body = answer.json()
            assert set(body) == {"error", "status"} and body["status"] == 500
            reference = answer.headers["X-Incident"]
            assert f"incident {reference}" in body["error"]
            assert "Traceback" not in answer.text and "self.len" not in answer.text
            assert answer.headers["X-Content-Type-Options"] == "nosniff"  # headers still on
        page = client.get("/boom", headers={"Accept": "text/html"})
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert f"incident {page.headers['X-Incident']}" in page.text
        assert "Traceback" not in page.text and "PanicException" not in page.text
        assert client.get("/api/boom").status_code == 500  # the app lives on
    logged = [r for r in caplog.records if r.name == "placeharm.web"]
    assert len(logged) == 4 and all(r.exc_info for r in logged)  # the details: server log
    assert reference in logged[1].getMessage()


def test_an_upload_that_panics_is_refused_with_its_reason_and_the_next_imports(
    own_demo: Callable[[], str], northumbria: Path, tmp_path: Path, monkeypatch
):
    db = own_demo()
    bad = _slice(northumbria, tmp_path, "2020-06")
    good = _slice(northumbria, tmp_path, "2020-07")
    _panics_on(monkeypatch, bad.name)
    with TestClient(create_app(load_settings(db=db))) as client:
        cookie = sign_in(client, "admin", justify=False)
        headers = csrf_headers(client, cookie)

        def upload(path: Path):
            return client.post(
                "/api/upload",
                data={"kind": "police.uk"},
                files={"file": (path.name, path.read_bytes())},
                cookies=cookie,
                headers=headers,
            )

        refused = upload(bad)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert "PanicException" in error and "nothing" in error and "Traceback" not in error
        assert "placeharm-upload-" not in error  # no temporary path
        imported = upload(good)
        assert imported.status_code == 200 and imported.json()["results"][0]["status"] == "ok"
        log = client.get("/api/admin", cookies=cookie).json()["tables"]["imports"]
        assert [r["status"] for r in log[:2]] == ["ok", "failed"]
        assert log[1]["source_file"].endswith(bad.name)


def test_a_panicking_dropped_file_goes_to_failed_with_its_reason_and_the_next_imports(
    own_demo: Callable[[], str], northumbria: Path, tmp_path: Path, monkeypatch
):
    db = own_demo()
    drop = tmp_path / "drop"
    drop.mkdir()
    source = tmp_path / "in"
    source.mkdir()
    bad = _slice(northumbria, source, "2020-06")
    _panics_on(monkeypatch, bad.name)
    app = create_app(load_settings(db=db), drop)
    with TestClient(app) as client:
        cookie = sign_in(client, "admin", justify=False)
        health = client.get("/api/admin", cookies=cookie).json()["drop_folder"]
        assert health["running"] and health["failed"] == 0 and health["last_error"] is None
        shutil.copy(bad, drop / bad.name)
        deadline = time.time() + 20
        while time.time() < deadline and not (drop / "failed" / bad.name).exists():
            time.sleep(0.1)
        # a later file arrives after the panic: the watcher is still alive and imports it
        (drop / "groups__later.csv").write_text("group_id,group_type,synthetic\nL-G1,OCG,true\n")
        while time.time() < deadline and not (drop / "done" / "groups__later.csv").exists():
            time.sleep(0.1)
        watcher = app.state.placeharm.watcher
        assert watcher is not None and watcher._thread.is_alive()
        health = client.get("/api/admin", cookies=cookie).json()["drop_folder"]
        page = client.get("/admin", cookies=cookie, headers={"Accept": "text/html"}).text
    assert (drop / "failed" / bad.name).exists() and not (drop / bad.name).exists()
    assert (drop / "done" / "groups__later.csv").exists()
    reason = (drop / "failed" / f"{bad.name}.reason.txt").read_text()
    assert "failed, nothing imported" in reason and "What to do:" in reason
    assert "When: 20" in reason and "import " in reason
    assert "Crime ID" not in reason  # none of the file's content
    assert health["running"] and health["imported"] == 1 and health["failed"] == 1
    assert health["last_look_at"] is not None
    last = health["last_error"]
    assert last["file"] == bad.name and "failed, nothing imported" in last["message"]
    assert last["at"].startswith("20")
    assert "Drop folder" in page and bad.name in page and "running" in page
    import_id = int(re.search(r"import (\d+)", reason).group(1))  # type: ignore[union-attr]
    with placeharm.open_store(db) as store:
        row = store.imports(50).filter(pl.col("import_id") == import_id).row(0, named=True)
    assert row["status"] == "failed" and "PanicException" in row["message"]
    assert row["imported_by"] == "drop-folder"


@pytest.mark.parametrize("where", ["importer", "soc"])
def test_a_dropped_soc_file_that_panics_is_moved_with_its_reason(
    own_demo: Callable[[], str], tmp_path: Path, monkeypatch, where: str
):
    db = own_demo()
    drop = tmp_path / "drop"
    drop.mkdir()
    app = create_app(load_settings(db=db), drop)
    if where == "importer":  # the web layer's importer itself
        importer = app.state.placeharm.importer
        real = importer.import_path

        def import_path(kind: str, path: Path, actor: object) -> dict[str, object]:
            if path.name.startswith("groups__panics"):
                raise PanicException("assertion failed: i < self.len()")
            return real(kind, path, actor)  # type: ignore[arg-type]

        importer.import_path = import_path
    else:  # inside the SOC importer's transaction

        def store_rows(*args: object, **kwargs: object) -> None:
            raise PanicException("assertion failed: i < self.len()")

        monkeypatch.setattr(soc_importer, "_store_rows", store_rows)
    (drop / "groups__panics.csv").write_text("group_id,group_type,synthetic\nP-G1,OCG,true\n")
    with TestClient(app):
        deadline = time.time() + 15
        while time.time() < deadline and not (drop / "failed" / "groups__panics.csv").exists():
            time.sleep(0.1)
        health = app.state.placeharm.watcher.health()
    reason = (drop / "failed" / "groups__panics.csv.reason.txt").read_text()
    assert "PanicException" in reason and "failed, nothing imported" in reason
    assert health.running and health.failed == 1 and health.imported == 0
    import_id = int(re.search(r"import (\d+)", reason).group(1))  # type: ignore[union-attr]
    with placeharm.open_store(db) as store:
        log = store.imports(50).filter(pl.col("import_id") == import_id)
        assert log["status"].to_list() == ["failed"]
        assert store.imports(50)["source_file"].str.contains("groups__panics").sum() == 1
