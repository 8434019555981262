# One command to set up and run the demo, one to set up and run every test.
# Both bootstrap uv (pinned) into .uv/, then install exactly what uv.lock says into .venv/.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: demo test check bench setup clean mutation

$(UV):
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

setup: $(UV)
	$(UV) sync --locked

demo: setup
	.venv/bin/placeharm demo

test: setup
	.venv/bin/pytest

check: setup
	.venv/bin/ruff format --check src tests bench
	.venv/bin/ruff check src tests bench
	.venv/bin/mypy

bench: setup
	.venv/bin/python bench/run.py

# Mutation testing of the critical modules ([tool.mutmut] in pyproject.toml; docs/testing.md).
# Slow (an hour or more for every module on two cores), so never in CI. Narrow it with
# MUTANTS, e.g. make mutation MUTANTS='placeharm.services.policy*'; results stay in mutants/
# and a later run picks up where the last one stopped.
MUTANTS ?=
MUTATION_JOBS ?= 2
mutation: export PLACEHARM_SHARED_DATA ?= $(abspath ../shared/data)
mutation: setup
	.venv/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	.venv/bin/python tools/mutation_report.py

clean:
	rm -rf .venv .uv placeharm.duckdb placeharm.duckdb.wal mutants
