"""Fuzz the CSV reading path with a large seeded corpus of mutated real police.uk files.

    .venv/bin/python bench/fuzz_csv.py                 # 5,000 files, seed 1
    .venv/bin/python bench/fuzz_csv.py --seed 7 --files 20000 --batch 50

The corpus and the checks are those of tests/integration/test_fuzz_corpus_csv.py (which runs
720 files in CI): no exception escapes `ingest()`, no traceback is logged, refused files write
nothing, imported files balance, every quarantined row keeps its file, line, whole raw text
and reason. Prints the files by mutation and outcome and writes
bench/results/fuzz-csv-<UTC timestamp>.json (and fuzz-csv-latest.json). Exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

from common import REPO, northumbria_dir, run_info, save_results, utc_stamp

sys.path.insert(0, str(REPO / "tests" / "integration"))
from csv_corpus import build, check_results, data_counts, held_versions, outcome_counts

from placeharm.services.ingest import ingest
from placeharm.services.integrity import check
from placeharm.store.duckdb import DuckDBStore


class _Tracebacks(logging.Handler):
    """Counts log records that carry a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record.getMessage())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=40, help="files per ingest call")
    parser.add_argument("--keep", action="store_true", help="keep the corpus and the store")
    args = parser.parse_args()
    stamp = utc_stamp()
    info = run_info("fuzz-csv", stamp)
    work = Path(tempfile.mkdtemp(prefix="placeharm-fuzz-csv-"))
    handler = _Tracebacks()
    logging.getLogger("placeharm").addHandler(handler)
    started = time.perf_counter()
    cases = build(args.seed, args.files, northumbria_dir())
    built = time.perf_counter() - started
    failures: list[str] = []
    escaped: list[str] = []
    outcomes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    try:
        with DuckDBStore(work / "fuzz.duckdb") as store:
            for start in range(0, len(cases), args.batch):
                batch = cases[start : start + args.batch]
                folder = work / f"batch-{start:06d}"
                paths = [case.write(folder) for case in batch]
                before = data_counts(store)
                imports_before = store.table_counts()["imports"]
                held_before = held_versions(store)
                try:
                    results = ingest(store, paths)
                except BaseException as exc:  # what this bench looks for
                    escaped.append(f"files {start}-{start + len(batch) - 1}: {exc!r}")
                    traceback.print_exc()
                    continue
                failures += check_results(
                    store, batch, paths, results, before, imports_before, held_before
                )
                report = check(store)
                if not report.ok:
                    failures.append(f"placeharm check after files {start}-: {report}")
                outcomes.update(outcome_counts(batch, results))
                statuses.update(r.status for r in results)
                if not args.keep:
                    shutil.rmtree(folder)
                done = start + len(batch)
                if done % 1000 < args.batch:
                    print(f"  {done} files, {time.perf_counter() - started:.0f} s")
    finally:
        logging.getLogger("placeharm").removeHandler(handler)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(f"{len(cases)} files (seed {args.seed}) in {elapsed:.1f} s ({built:.1f} s building)")
    print(f"  outcomes: {dict(statuses)}")
    print(
        f"  exceptions out of ingest(): {len(escaped)}; tracebacks logged: {len(handler.records)}"
    )
    print(f"  invariant failures: {len(failures)}")
    for line in failures[:20]:
        print(f"    {line}")
    print("  by mutation (first one applied) and outcome:")
    for key, count in sorted(outcomes.items()):
        print(f"    {key}: {count}")
    results = {
        **info,
        "seed": args.seed,
        "files": len(cases),
        "batch": args.batch,
        "seconds": round(elapsed, 1),
        "statuses": dict(statuses),
        "by_mutation": dict(sorted(outcomes.items())),
        "exceptions": escaped,
        "tracebacks": handler.records[:50],
        "failures": failures[:200],
        "failure_count": len(failures),
    }
    path = save_results("fuzz-csv", stamp, results, "fuzz-csv-latest.json")
    print(f"results: {path.relative_to(REPO)}")
    return 1 if failures or escaped or handler.records else 0


if __name__ == "__main__":
    sys.exit(main())
