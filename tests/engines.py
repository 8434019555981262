"""Which store engine a test runs on (issue 17), shared by tests/conftest.py and
tests/web/conftest.py: DuckDB, or PLACEHARM_TEST_ENGINE; both for tests marked both_engines
(or every test with PLACEHARM_TEST_BOTH_ENGINES=1); DuckDB for tests marked duckdb_only."""

from __future__ import annotations

import os

import pytest

ENGINES = ("duckdb", "postgresql")


def default_engine() -> str:
    """The engine of tests not marked both_engines: PLACEHARM_TEST_ENGINE, else DuckDB."""
    chosen = os.environ.get("PLACEHARM_TEST_ENGINE", "").strip().lower() or "duckdb"
    if chosen not in ENGINES:
        raise pytest.UsageError(
            f"PLACEHARM_TEST_ENGINE={chosen!r}: give one of {', '.join(ENGINES)}"
        )
    return chosen


def engines_for(definition: pytest.Function) -> list[str] | None:
    """The engines a test runs on when that is not the default (None: the default alone).
    A duckdb_only test stays on DuckDB; both_engines (or PLACEHARM_TEST_BOTH_ENGINES=1) runs
    it on both."""
    if definition.get_closest_marker("duckdb_only"):
        return None if default_engine() == "duckdb" else ["duckdb"]
    every = os.environ.get("PLACEHARM_TEST_BOTH_ENGINES") == "1"
    if every or definition.get_closest_marker("both_engines"):
        return list(ENGINES)
    return None
