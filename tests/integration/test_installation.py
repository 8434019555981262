"""`placeharm --version`, and the version, commit and store schema in `placeharm check`
(issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

import placeharm
from placeharm.cli.main import app
from placeharm.store.migrations import LATEST_VERSION
from placeharm.version import describe


def test_version_prints_version_commit_and_schema_without_a_store(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no placeharm.duckdb here, and none is made
    done = CliRunner().invoke(app, ["--version"])
    assert done.exit_code == 0, done.output
    this = describe()
    assert done.stdout.strip() == this.line()
    assert re.fullmatch(
        rf"placeharm {re.escape(this.version)} \(commit [0-9a-f]{{12}}[^,]*, store schema "
        rf"{LATEST_VERSION}, Python 3\.\d+\.\d+\)",
        done.stdout.strip(),
    )
    assert not list(tmp_path.iterdir())


def test_check_names_the_installation_and_the_stores_schema(db_at):
    db = db_at("store")
    with placeharm.open_store(db):
        pass  # a new store, at the latest schema
    done = CliRunner().invoke(app, ["check", "--db", db])
    assert done.exit_code == 0, done.output
    this = describe()
    first = done.stdout.splitlines()[0]
    assert first == (
        f"placeharm {this.version}, commit {this.commit_text()}; store schema version "
        f"{LATEST_VERSION} (this placeharm writes {LATEST_VERSION})."
    )
    assert "The store holds" in done.stdout
