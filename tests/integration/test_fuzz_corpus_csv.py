"""A seeded corpus of mutated real CSV files (issue 13): no exception escapes `ingest()`, no
traceback, every refused file leaves the store as it was, every imported file balances and
every quarantined row keeps its file, line, whole raw text and a reason.

The corpus and the checks are in csv_corpus.py; bench/fuzz_csv.py runs a larger one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from pathlib import Path

import pytest
from csv_corpus import build, check_results, data_counts, held_versions, outcome_counts

from placeharm.services.ingest import ingest
from placeharm.services.integrity import check

SEED = 20261206
FILES = 720
BATCH = 40  # files per ingest call: refused and imported files mixed in each call


def test_fuzz_corpus_of_mutated_real_csv_files(
    tmp_path: Path, store_at, northumbria: Path, caplog: pytest.LogCaptureFixture
):
    started = time.perf_counter()
    cases = build(SEED, FILES, northumbria)
    paths = [case.write(tmp_path / "corpus") for case in cases]
    failures: list[str] = []
    outcomes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    with store_at("fuzz") as store, caplog.at_level(logging.WARNING):
        # refused files one at a time first: every table exactly as before
        alone = [i for i, c in enumerate(cases) if c.expect == "refused"][:25]
        for i in alone:
            before = data_counts(store)
            result = ingest(store, [paths[i]])[0]
            assert result.status == "refused", (cases[i].mutation, result)
            assert data_counts(store) == before, cases[i].mutation
            outcomes.update(outcome_counts([cases[i]], [result]))
            statuses[result.status] += 1
        rest = [i for i in range(len(cases)) if i not in set(alone)]
        for start in range(0, len(rest), BATCH):
            batch = rest[start : start + BATCH]
            before = data_counts(store)
            imports_before = store.table_counts()["imports"]
            held_before = held_versions(store)
            results = ingest(store, [paths[i] for i in batch])
            chosen = [cases[i] for i in batch]
            failures += check_results(
                store,
                chosen,
                [paths[i] for i in batch],
                results,
                before,
                imports_before,
                held_before,
            )
            # and every invariant `placeharm check` verifies, after every call
            report = check(store)
            if not report.ok:
                failures.append(f"placeharm check after files {start}-: {report}")
            outcomes.update(outcome_counts(chosen, results))
            statuses.update(r.status for r in results)
            # the good files of a mixed call import
            assert any(r.status == "ok" for r in results)
    tracebacks = [r for r in caplog.records if r.exc_info]
    elapsed = time.perf_counter() - started
    print(f"\n{FILES} files in {elapsed:.1f} s: {dict(statuses)}")
    print("\n".join(f"  {k}: {v}" for k, v in sorted(outcomes.items())))
    assert not tracebacks, [r.getMessage() for r in tracebacks][:5]
    assert not failures, "\n".join(failures[:30])
    assert statuses["failed"] == 0
    assert statuses["ok"] > 300 and statuses["refused"] > 100
