"""kill -9 during `placeharm ingest` (issue 13): the store opens, holds its invariants at once
(derived columns commit with their data), and a re-run ends identical to a store built
without kills. bench/kill_ingest.py runs more trials and prints figures. On PostgreSQL the
server rolls back the killed process's open transaction (issue 17): the same checks hold."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import placeharm
from placeharm.cli.main import app
from placeharm.services import integrity
from placeharm.services.ingest import ingest
from placeharm.store.duckdb import DuckDBStore

FILES = (
    "2021-05-northumbria-street.csv.gz",
    "2021-06-northumbria-outcomes.csv.gz",
    "2021-07-northumbria-outcomes.csv.gz",
)
TRIALS = {"duckdb": 10, "postgresql": 4}  # PostgreSQL's ingest is slower; kills cost more
# Small groups, so that a run commits several times and a kill can fall between commits.
CHILD = (
    "import sys; import placeharm.services.ingest as m; m._GROUP_ROWS = 6000; "
    "from placeharm.cli.main import main; sys.argv = ['placeharm', *sys.argv[1:]]; main()"
)
# provenance that depends on how many runs it took, left out of the comparison
ORDER_DEPENDENT = {"import_id", "replaced_by_import", "replaced_at"}


def _ingest(store: str, files: list[Path]) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", CHILD, "ingest", *map(str, files), "--db", store]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _exists(place: str) -> bool:
    """The store at `place` has been created: its DuckDB file exists, or its PostgreSQL
    schema holds the committed tables of its migrations."""
    if not place.startswith("postgresql://"):
        return Path(place).exists()
    import psycopg

    with psycopg.connect(place) as con:
        row = con.execute("SELECT to_regclass('imports') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _opened(child: subprocess.Popen[bytes], place: str) -> float:
    """Wait until the child has opened (created) the store, i.e. its imports are done and
    the ingest begins; return when (perf_counter)."""
    while not _exists(place) and child.poll() is None:
        time.sleep(0.005)
    return time.perf_counter()


def state(place: str) -> dict[str, pl.DataFrame]:
    """Everything a re-run must reproduce, derived columns included."""
    with placeharm.open_store(place) as store:
        out = {}
        for table in ("crimes", "outcomes", "crime_history", "outcome_history", "coverage"):
            frame = store._frame(f"SELECT * FROM {table}")
            keep = [c for c in frame.columns if c not in ORDER_DEPENDENT]
            out[table] = frame.select(keep).sort(keep, nulls_last=True)
        quarantine = store._frame(
            "SELECT DISTINCT source_file, line, raw_text, reason FROM quarantine"
        )
        out["quarantine"] = quarantine.sort(quarantine.columns, nulls_last=True)
        return out


def test_kill_9_then_rerun_matches_a_clean_build(northumbria: Path, engine: str, db_at):
    files = [northumbria / name for name in FILES]
    clean = db_at("clean")
    child = _ingest(clean, files)
    opened = _opened(child, clean)
    assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
    ingest_s = time.perf_counter() - opened  # from the store's opening to the end
    expected = state(clean)
    assert expected["crimes"]["latest_outcome"].is_not_null().sum() > 1000

    rng = np.random.default_rng(13)
    killed_after_commits = 0
    for trial in range(TRIALS[engine]):
        path = db_at(f"trial{trial}")
        child = _ingest(path, files)
        _opened(child, path)  # kills fall while the store is open: during the ingest
        time.sleep(float(rng.uniform(0.0, 1.0)) * ingest_s)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if _exists(path):  # the store opens and already holds every invariant
            with placeharm.open_store(path) as store:
                failures = store.invariant_failures()
                assert not any(failures.values()), (trial, failures)
                killed_after_commits += store.table_counts()["imports"] > 0
        with placeharm.open_store(path) as store:  # the re-run, to completion (in process)
            assert all(r.ok for r in ingest(store, files))
        got = state(path)
        for table, frame in expected.items():
            assert got[table].equals(frame), (trial, table)
        with placeharm.open_store(path) as store:
            assert integrity.check(store).ok, trial
    # the seeded delays put some kills after a commit (partial stores were checked)
    assert killed_after_commits >= 1


@pytest.mark.parametrize("column", ["latest_outcome", "in_area"])
def test_check_repair_restores_broken_derived_columns(
    store_with_areas: DuckDBStore, northumbria: Path, tmp_path: Path, column: str
):
    store = store_with_areas
    ingest(store, [northumbria / FILES[0], northumbria / FILES[2]])
    clean = store.crime_frame(["crime_id", "latest_outcome", "latest_outcome_month", "in_area"])
    assert integrity.check(store).ok
    if column == "latest_outcome":
        store._run("UPDATE crimes SET latest_outcome = NULL, latest_outcome_month = NULL")
    else:
        store._run("UPDATE crimes SET in_area = NOT in_area WHERE located")
    broken = integrity.check(store)
    assert not broken.ok
    assert {k for k, v in broken.failures.items() if v} <= set(integrity.DERIVED)
    fixed = integrity.check(store, repair=True)
    assert fixed.ok and sum(fixed.repaired.values()) > 0
    after = store.crime_frame(["crime_id", "latest_outcome", "latest_outcome_month", "in_area"])
    assert after.sort(after.columns, nulls_last=True).equals(
        clean.sort(clean.columns, nulls_last=True)
    )


def test_check_cli_exit_codes(northumbria: Path, db_at):
    from typer.testing import CliRunner

    path = db_at("cli")
    with placeharm.open_store(path) as store:
        ingest(store, [northumbria / FILES[0], northumbria / FILES[1]])
    runner = CliRunner()
    ok = runner.invoke(app, ["check", "--db", path])
    assert ok.exit_code == 0, ok.output
    with placeharm.open_store(path) as store:
        store._run("UPDATE crimes SET latest_outcome = 'Nonsense'")
        store._run("DELETE FROM imports WHERE source_kind = 'outcomes'")  # orphans the outcomes
    bad = runner.invoke(app, ["check", "--db", path])
    assert bad.exit_code == 5
    assert "stale latest outcome" in bad.output
    assert "outcomes rows without their import" in bad.output
    fix = runner.invoke(app, ["check", "--repair", "--db", path])
    # the derived column is repaired and said so; orphaned rows are facts: still reported
    assert "repaired" in fix.output and "latest outcome" in fix.output
    assert fix.exit_code == 5 and "without their import" in fix.output
    with placeharm.open_store(path) as store:
        assert store.invariant_failures()["crimes with a stale latest outcome"] == 0
