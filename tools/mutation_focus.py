"""Mutation-test a few functions against a few fast test files (docs/testing.md).

mutmut 3 maps each test of `pytest_add_cli_args_test_selection` to the functions it reaches,
then runs, for each mutant, every selected test that reaches the mutated function. The
configured selection holds integration tests that write audit entries or read files, so an
audit or ingest mutant that survives runs all of them (hours). This runs mutmut in a scratch
copy of the project whose selection is only the test files named here: minutes. The copy is
kept, so a second run with the same tests continues where the first stopped.

    .venv/bin/python tools/mutation_focus.py /tmp/mut-audit \\
        --tests tests/unit/test_audit_chain.py \\
        --mutants 'placeharm.audit.verify.*' 'placeharm.audit.entry.*'

Then `python tools/mutation_report.py --survivors` from inside the scratch directory.
A narrower selection can only kill fewer mutants than the configured one, never more.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scratch", type=Path, help="a directory of its own (created)")
    parser.add_argument("--tests", nargs="+", required=True, help="test files to run")
    parser.add_argument("--mutants", nargs="+", required=True, help="mutant name globs")
    parser.add_argument(
        "--modules",
        nargs="+",
        help="mutate only these source files (default: every configured one; naming the "
        "files the mutants are in saves generating the others' mutants, minutes per run)",
    )
    parser.add_argument("--max-children", default="1")
    args = parser.parse_args(argv)
    scratch: Path = args.scratch.resolve()
    if scratch == ROOT or ROOT in scratch.parents:
        parser.error("the scratch directory must be outside the project")
    scratch.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", "docs"):
        shutil.copytree(
            ROOT / name,
            scratch / name,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    listed = "".join(f'    "{t}",\n' for t in args.tests)
    selection = f"pytest_add_cli_args_test_selection = [\n{listed}]"
    text = (ROOT / "pyproject.toml").read_text()
    text, count = re.subn(
        r"pytest_add_cli_args_test_selection = \[[^\]]*\]", lambda _: selection, text
    )
    if count != 1:
        print("pyproject.toml has no [tool.mutmut] test selection to replace", file=sys.stderr)
        return 1
    if args.modules:
        listed = "".join(f'    "{m}",\n' for m in args.modules)
        text, count = re.subn(
            r"only_mutate = \[[^\]]*\]", lambda _: f"only_mutate = [\n{listed}]", text
        )
        if count != 1:
            print("pyproject.toml has no [tool.mutmut] only_mutate to replace", file=sys.stderr)
            return 1
    (scratch / "pyproject.toml").write_text(text)
    env = dict(os.environ)
    env.setdefault("PLACEHARM_SHARED_DATA", str((ROOT.parent / "shared" / "data").resolve()))
    mutmut = str(Path(sys.executable).parent / "mutmut")
    command = [mutmut, "run", "--max-children", args.max_children, *args.mutants]
    result = subprocess.run(command, cwd=scratch, env=env, check=False)
    report = [sys.executable, str(ROOT / "tools" / "mutation_report.py")]
    subprocess.run(report, cwd=scratch, check=False)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
