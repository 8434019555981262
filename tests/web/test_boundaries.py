"""Failures end in a message, never a traceback or a dead thread: a native library's panic
(pyo3's PanicException) is a BaseException, which `except Exception` misses (DESIGN.md §5)."""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import placeharm.cli.main as cli
from placeharm.config import load_settings
from placeharm.web.app import create_app


class FakePanic(BaseException):
    """Stands in for pyo3_runtime.PanicException: a BaseException, not an Exception."""


def test_the_cli_turns_a_panic_into_a_message_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    def panics() -> None:
        raise FakePanic("assertion failed: i < self.len()")

    monkeypatch.setattr(cli, "app", panics)
    monkeypatch.setattr(sys, "argv", ["placeharm", "ingest", "x.csv"])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    assert ended.value.code == 1
    said = capsys.readouterr()
    assert "unexpected failure" in said.err and "FakePanic" in said.err
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


def test_a_panic_on_one_dropped_file_neither_kills_the_watcher_nor_stops_the_next(
    pristine_db: Path, tmp_path: Path
):
    db = tmp_path / "drop.duckdb"
    shutil.copy(pristine_db, db)
    drop = tmp_path / "drop"
    drop.mkdir()
    app = create_app(load_settings(db=db), drop)
    importer = app.state.placeharm.importer
    real = importer.import_path

    def import_path(kind: str, path: Path, actor: object) -> dict[str, object]:
        if path.name.startswith("groups__panics"):
            raise FakePanic("assertion failed: i < self.len()")
        return real(kind, path, actor)  # type: ignore[arg-type]

    importer.import_path = import_path
    (drop / "groups__panics.csv").write_text("group_id,group_type,synthetic\nP-G1,OCG,true\n")
    with TestClient(app):
        deadline = time.time() + 15
        while time.time() < deadline and not (drop / "failed" / "groups__panics.csv").exists():
            time.sleep(0.1)
        # a later file arrives after the panic: the watcher is still alive and imports it
        (drop / "groups__later.csv").write_text("group_id,group_type,synthetic\nL-G1,OCG,true\n")
        while time.time() < deadline and not (drop / "done" / "groups__later.csv").exists():
            time.sleep(0.1)
        watcher = app.state.placeharm.watcher
        assert watcher is not None and watcher._thread.is_alive()
    assert (drop / "failed" / "groups__panics.csv").exists()
    error = (drop / "failed" / "groups__panics.csv.error.txt").read_text()
    assert "FakePanic" in error and "nothing imported" in error
    assert (drop / "done" / "groups__later.csv").exists()
