"""`placeharm prominence` and `placeharm alerts` on a copy of the demo store (issue 16)."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

import placeharm
from placeharm.cli.main import app as cli
from placeharm.errors import DataError, NotFound

# both tests share the module's copy of the demo store (module_demo): the first adds audit
# entries, which it finds by page; the second's commands are refused before they read


def test_commands_print_the_planted_rises_and_log_the_list_of_people(module_demo: str):
    db = module_demo
    runner = CliRunner()
    alerts = runner.invoke(cli, ["alerts", "--db", db, "--format", "json"])
    assert alerts.exit_code == 0, alerts.output
    body = json.loads(alerts.stdout)
    assert body["month"] == "2022-03" and body["tested"] > 0
    drug = [a for a in body["alerts"] if a["measure"] == "drug_supply"]
    assert len(drug) >= 2 and all(a["alert"] for a in body["alerts"])
    table = runner.invoke(cli, ["alerts", "--db", db])
    assert table.exit_code == 0 and drug[0]["reason"] in table.stdout.replace("\n", " ")
    rising = runner.invoke(cli, ["prominence", "--db", db, "--format", "json"])
    assert rising.exit_code == 0, rising.output
    nominals = json.loads(rising.stdout)["nominals"]
    assert len(nominals) >= 3 and all(n["rising"] for n in nominals)
    # the records behind the rises go out only for the nominals listed
    assert set(json.loads(rising.stdout)["spark"]) == {n["nominal_id"] for n in nominals}
    with placeharm.open_store(db) as store:
        entries = store.audit_entries()
    shown = [e for e in entries if e.get("page") == "prominence"]
    assert shown and shown[-1]["action"] == "disclosure"
    named = shown[-1]["record_ids"]
    named = json.loads(named) if isinstance(named, str) else named
    assert {n["nominal_id"] for n in nominals} <= set(named["nominal"])
    assert named.get("intelligence")  # the planted risers' intelligence is named


def test_bad_options_end_in_a_message(module_demo: str):
    db = module_demo
    entry = "from placeharm.cli.main import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", entry, "prominence", "--fdr", "1.5", "--db", db],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr  # docs/cli.md: 2 for a data error
    assert "false discovery rate must be between 0 and 1" in result.stderr
    assert "Traceback" not in result.stderr
    runner = CliRunner()
    for args, kind in (
        (["alerts", "--baseline", "0"], DataError),
        (["alerts", "--by", "x"], NotFound),
    ):
        invoked = runner.invoke(cli, [*args, "--db", db])
        assert isinstance(invoked.exception, kind), invoked.output
