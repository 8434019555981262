# One command to set up and run the demo, one to set up and run every test.
# Both bootstrap uv (pinned) into .uv/, then install exactly what uv.lock says into .venv/.
# Python: the newest supported one on PATH (3.14 down to 3.11; packaging/find-python), or
# PYTHON=/path/to/python3.X. A .venv made by another version is remade by `uv sync`.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell sh packaging/find-python 2>/dev/null)
endif
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: demo test check bench setup clean

$(UV):
	@test -n "$(PYTHON)" || { sh packaging/find-python >/dev/null || true; \
	  echo "make: no Python to set up with (see above, or set PYTHON=...)" >&2; exit 1; }
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

clean:
	rm -rf .venv .uv placeharm.duckdb placeharm.duckdb.wal
