# Two entry points (see README): `make demo` runs the main job, `make test` runs the suite.
# Both create the pinned virtual environment in .venv first; nothing else needs installing.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint format bench addon clean

setup: $(STAMP)

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py --out out/demo

test: setup lint
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Quick runs of the three benchmarks; docs/benchmarks.md has the full commands and figures.
bench: setup
	$(PY) -m daemon bench-protocol --quick
	$(PY) -m daemon bench --quick
	$(PY) tests/addon/bench_addon.py

addon: setup
	$(PY) build_addon.py --out dist

clean:
	rm -rf $(VENV) out dist build .pytest_cache .ruff_cache .mypy_cache
