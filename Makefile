# Two entry points (see README): `make demo` runs the main job, `make test` runs the suite.
# Both create the pinned virtual environment in .venv first; nothing else needs installing.

PYTHON ?= python3.11
# Blender 5.1+ runs Python 3.13; pyenv provides it on the dev machines and CI.
PYTHON313 ?= env PYENV_VERSION=3.13.0 python3.13
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The add-on suite (every tests/addon/test_*.py) per Blender version, each on the bpy module from
# PyPI in its own venv under build/bpy/ made from tests/addon/requirements/bpy-<version>.lock;
# 5.0 is .venv's bpy. The test daemons always run on .venv (torch stays out of Blender's venvs).
BLENDER_ALL := 4.2 4.5 5.0 5.2 5.3
BLENDER_CI := 4.2 4.5 5.2 5.3# every maintained Blender besides 5.0: part of every `make test`
BPY_VENVS := build/bpy
PYTEST_ARGS ?= -q
python_for = $(if $(filter 5.2 5.3,$(1)),$(PYTHON313),$(PYTHON))

# test-blender-<version> are not .PHONY: make skips pattern rules for phony targets.
.PHONY: setup demo test test-suite assimp lint format bench addon clean test-blender-all

setup: $(STAMP)

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py --out out/demo

test: test-suite $(BLENDER_CI:%=test-blender-%)

test-suite: setup lint assimp
	$(PY) -m pytest -q

test-blender-all: $(BLENDER_ALL:%=test-blender-%)

.PRECIOUS: $(BPY_VENVS)/%/.installed
$(BPY_VENVS)/%/.installed: tests/addon/requirements/bpy-%.lock
	rm -rf $(BPY_VENVS)/$*
	$(call python_for,$*) -m venv $(BPY_VENVS)/$*
	$(BPY_VENVS)/$*/bin/python -m pip install --quiet -r $<
	cp $< $@

test-blender-5.0: setup
	HYMOTION_DAEMON_PYTHON=$(abspath $(PY)) $(PY) -m pytest tests/addon $(PYTEST_ARGS)

test-blender-%: setup $(BPY_VENVS)/%/.installed
	HYMOTION_DAEMON_PYTHON=$(abspath $(PY)) $(BPY_VENVS)/$*/bin/python -m pytest tests/addon \
		$(PYTEST_ARGS)

# The FBX export tests also read the files with assimp, a reader independent of Blender (Debian's
# assimp-utils); installed here when possible (root with apt), else those checks skip and say so.
assimp:
	@command -v assimp >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& (apt-get update -qq && apt-get install -y -qq assimp-utils) >/dev/null 2>&1; } \
		|| echo "note: assimp-utils not installed; the assimp FBX checks will skip"

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# A quick run of every benchmark: the daemon's two, then each tests/*/bench_*.py (found by name,
# so a new one is never left out) with its quick flags below, if it has any. Each prints its
# figures; docs/benchmarks.md has the full commands and the recorded figures.
BENCH_SCRIPTS := $(sort $(wildcard tests/*/bench_*.py))
BENCH_QUICK_bench_directed := --repeats 1 --steps 5 --candidates 1
BENCH_QUICK_bench_deform_export := --repeats 1
BENCH_QUICK_bench_finishing := --repeats 3
BENCH_QUICK_bench_ray := --jobs 20 --replicas-max 1
BENCH_QUICK_bench_rebake := --repeats 1
BENCH_QUICK_bench_retarget := 1
BENCH_QUICK_bench_take_steps := --repeats 1
define bench_script
	@echo "== $(1)"
	HYMOTION_DAEMON_PYTHON=$(abspath $(PY)) $(PY) -m $(subst /,.,$(basename $(1))) \
		$(BENCH_QUICK_$(basename $(notdir $(1))))

endef

bench: setup
	$(PY) -m daemon bench-protocol --quick
	$(PY) -m daemon bench --quick
	$(foreach script,$(BENCH_SCRIPTS),$(call bench_script,$(script)))

addon: setup
	$(PY) build_addon.py --out dist

clean:
	rm -rf $(VENV) out dist build .pytest_cache .ruff_cache .mypy_cache
