"""kill -9 during `placeharm ingest`, many times (issue 13): the bounded version is
tests/integration/test_kill_ingest.py.

Each trial starts `placeharm ingest` of real Northumbria files on a fresh store in a
subprocess, sends SIGKILL after a seeded random delay, opens the store and checks its
invariants (`placeharm check`'s), re-runs the ingest to completion and compares the store with
one built without kills (records, outcomes, history, coverage, quarantine, derived columns
included). Prints the figures and writes bench/results/kill-<UTC timestamp>.json.

    .venv/bin/python bench/kill_ingest.py --trials 40 --months 6 --seed 13
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import polars as pl

from common import RESULTS, northumbria_dir, write_json
from placeharm.services import integrity
from placeharm.store.duckdb import DuckDBStore

ORDER_DEPENDENT = {"import_id", "replaced_by_import", "replaced_at"}


def _child(group_rows: int) -> str:
    return (
        "import sys; import placeharm.services.ingest as m; "
        f"m._GROUP_ROWS = {group_rows}; from placeharm.cli.main import main; "
        "sys.argv = ['placeharm', *sys.argv[1:]]; main()"
    )


def _ingest(store: Path, files: list[Path], group_rows: int) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-c", _child(group_rows), "ingest", *map(str, files)]
    return subprocess.Popen(
        [*args, "--db", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ},
    )


def _opened(child: subprocess.Popen[bytes], path: Path) -> float:
    """Wait until the child has created the store (its imports done, the ingest starting)."""
    while not path.exists() and child.poll() is None:
        time.sleep(0.005)
    return time.perf_counter()


def _state(path: Path) -> dict[str, pl.DataFrame]:
    with DuckDBStore(path) as store:
        out = {}
        for table in ("crimes", "outcomes", "crime_history", "outcome_history", "coverage"):
            frame = store._frame(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
            keep = [c for c in frame.columns if c not in ORDER_DEPENDENT]
            out[table] = frame.select(keep).sort(keep, nulls_last=True)
        out["quarantine"] = store._frame(
            "SELECT DISTINCT source_file, line, raw_text, reason FROM quarantine ORDER BY ALL"
        )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--months", type=int, default=6, help="street + outcomes months")
    parser.add_argument("--group-rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    folder = northumbria_dir()
    months = sorted(p.name[:7] for p in folder.glob("*-street.csv.gz"))[: args.months]
    files = [
        p
        for m in months
        for p in (
            folder / f"{m}-northumbria-street.csv.gz",
            folder / f"{m}-northumbria-outcomes.csv.gz",
        )
        if p.exists()
    ]
    rng = np.random.default_rng(args.seed)
    figures: dict[str, object] = {
        "files": len(files),
        "trials": args.trials,
        "seed": args.seed,
        "group_rows": args.group_rows,
    }
    with TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.duckdb"
        child = _ingest(clean, files, args.group_rows)
        opened = _opened(child, clean)
        if child.wait() != 0:
            sys.exit("the clean build failed")
        full_s = time.perf_counter() - opened  # from the store's opening to the end
        expected = _state(clean)
        figures["clean_run_s"] = round(full_s, 2)
        figures["crimes"] = expected["crimes"].height
        kills = []
        for trial in range(args.trials):
            path = Path(tmp) / f"trial{trial}.duckdb"
            delay = float(rng.uniform(0.0, 1.1)) * full_s
            child = _ingest(path, files, args.group_rows)
            _opened(child, path)  # delays count from the store's opening: during the ingest
            time.sleep(delay)
            finished_first = child.poll() is not None
            child.send_signal(signal.SIGKILL)
            child.wait()
            imports_at_kill = 0
            failures_at_kill: dict[str, int] = {}
            if path.exists():
                with DuckDBStore(path) as store:
                    imports_at_kill = store.table_counts()["imports"]
                    failures_at_kill = {k: v for k, v in store.invariant_failures().items() if v}
            rerun = _ingest(path, files, args.group_rows).wait()
            got = _state(path)
            same = rerun == 0 and all(got[t].equals(f) for t, f in expected.items())
            with DuckDBStore(path) as store:
                check_ok = integrity.check(store).ok
            kills.append(
                {
                    "trial": trial,
                    "delay_s": round(delay, 2),
                    "finished_before_kill": finished_first,
                    "imports_at_kill": imports_at_kill,
                    "failures_at_kill": failures_at_kill,
                    "identical_after_rerun": same,
                    "check_ok": check_ok,
                }
            )
            print(
                f"trial {trial:3d}: kill {delay:5.2f} s after opening, "
                f"{imports_at_kill:2d} files committed, "
                f"invariants at kill {failures_at_kill or 'ok'}, "
                f"re-run identical {same}, check {'ok' if check_ok else 'FAILS'}",
                flush=True,
            )
            path.unlink(missing_ok=True)
    figures["kills"] = kills
    figures["identical"] = sum(k["identical_after_rerun"] for k in kills)
    figures["consistent_at_kill"] = sum(not k["failures_at_kill"] for k in kills)
    figures["mid_ingest"] = sum(
        0 < int(k["imports_at_kill"]) < len(files) and not k["finished_before_kill"] for k in kills
    )
    print(
        f"{figures['identical']} of {args.trials} re-runs identical to the clean build; "
        f"{figures['consistent_at_kill']} of {args.trials} stores held every invariant at the "
        f"kill; {figures['mid_ingest']} kills fell between commits "
        f"(clean run {full_s:.1f} s from opening, "
        f"{len(files)} files)"
    )
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"kill-{stamp}.json"
    write_json(out, figures)
    print(f"written to {out}")
    if figures["identical"] != args.trials or figures["consistent_at_kill"] != args.trials:
        sys.exit(1)


if __name__ == "__main__":
    main()
