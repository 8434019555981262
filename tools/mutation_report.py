"""Kill rate per module from mutmut's results in mutants/ (`make mutation`; docs/testing.md).

A mutant counts as killed when a test failed on it or it ran past its time limit (an endless
loop the tests caught); "no tests" means no selected test reaches the function, and counts
against the rate. Mutants not yet run (an interrupted or narrowed run) are listed apart.
Run from the repository root: `python tools/mutation_report.py [--survivors]`.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255, 37}  # failed, pytest error, timeouts, type check
SURVIVED = {0}
NO_TESTS = {5, 33}


def main(argv: list[str]) -> int:
    root = Path("mutants/src")
    if not root.is_dir():
        print("no mutants/ here: run `make mutation` first")
        return 1
    rows = []
    survivors: list[str] = []
    for meta in sorted(root.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if not codes:
            continue
        count: Counter[str] = Counter()
        for name, code in codes.items():
            if code is None:
                count["not run"] += 1
            elif code in KILLED:
                count["killed"] += 1
            elif code in SURVIVED:
                count["survived"] += 1
                survivors.append(name)
            elif code in NO_TESTS:
                count["no tests"] += 1
                survivors.append(name)
            else:
                count["other"] += 1
        module = str(meta.relative_to(root))[: -len(".py.meta")].replace("/", ".")
        rows.append((module, len(codes), count))
    head = ("mutants", "run", "killed", "surv.", "no test", "rate")
    print(f"{'module':40} " + " ".join(f"{h:>7}" for h in head))
    for module, total, c in rows:
        run = total - c["not run"]
        judged = c["killed"] + c["survived"] + c["no tests"]
        rate = f"{100 * c['killed'] / judged:5.1f}%" if judged else "    -"
        values = (total, run, c["killed"], c["survived"], c["no tests"])
        print(f"{module:40} " + " ".join(f"{v:>7}" for v in values) + f" {rate:>7}")
    if "--survivors" in argv:
        print("\nsurviving (or untested) mutants: `.venv/bin/mutmut show NAME` shows each")
        for name in survivors:
            print(" ", name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
