# One command to set up and run the demo, one to set up and run every test.
# Both bootstrap uv (pinned) into .uv/, then install exactly what uv.lock says into .venv/.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .uv/bin/uv
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(PYTHON)

.PHONY: demo test check bench setup clean

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

clean:
	rm -rf .venv .uv placeharm.duckdb placeharm.duckdb.wal
