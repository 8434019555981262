# One command to set up and run the demo, one to set up and run every test.
# Both bootstrap uv (pinned) into .uv/, then install exactly what uv.lock says into .venv/.
# Python: the newest supported one on PATH (3.14 down to 3.11; packaging/find-python), or
# PYTHON=/path/to/python3.X. A .venv made by another version is remade by `uv sync`.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell sh packaging/find-python 2>/dev/null)
endif
UV_VERSION := 0.13.9
UV := .uv/bin/uv
# The environment make setup fills (CI also tests a second Python in VENV=.venv-3.13, say).
VENV ?= .venv
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: demo test check bench setup setup-demo clean bundle mutation

$(UV):
	@test -n "$(PYTHON)" || { sh packaging/find-python >/dev/null || true; \
	  echo "make: no Python to set up with (see above, or set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv .uv
	.uv/bin/pip install --quiet "uv==$(UV_VERSION)"

# Everything the tests need, the Spark job's extra included (pyspark: a 455 MB source package).
setup: $(UV)
	$(UV) sync --locked --extra spark

# The demo needs no Spark: the same lock without that extra (--inexact keeps one installed).
setup-demo: $(UV)
	$(UV) sync --locked --inexact

demo: setup-demo
	$(VENV)/bin/placeharm demo

test: setup
	$(VENV)/bin/pytest

check: setup
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy

bench: setup
	$(VENV)/bin/python bench/run.py

# An offline bundle in dist/: wheels for every runtime package, the pinned uv, install.sh,
# SHA256SUMS (packaging/bundle.sh; docs/deploy.md). BUNDLE_PYTHONS="3.11 3.13" narrows it.
bundle: $(UV)
	UV_VERSION=$(UV_VERSION) packaging/bundle.sh

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
	rm -rf .venv .venv-3.* .uv placeharm.duckdb placeharm.duckdb.wal mutants
