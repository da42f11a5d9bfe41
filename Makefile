# Two commands set everything up on a fresh machine:
#   make demo   record a demonstration dataset in simulation (the main job)
#   make test   lint, type-check and run the whole test suite
# Each installs what it needs first: system libraries (when root with apt-get), then .venv from requirements.lock.

SHELL := /bin/bash
PYTHON ?= $(shell bash .ci/find-python)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl

.PHONY: install system-deps demo test lint bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	bash .ci/system-deps
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found (install python3.12 or set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# Each run records into a new folder, so nothing recorded before is touched.
demo: install
	$(BIN)/vla-record env.task=pick policy=scripted episodes=50 \
		dataset.root=outputs/demo/dataset-$$(date +%Y%m%d-%H%M%S) hydra.run.dir=outputs/demo/record-$$(date +%Y%m%d-%H%M%S)

lint: install
	$(BIN)/ruff check vla policies envs hardware tests bench
	$(BIN)/ruff format --check vla policies envs hardware tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python bench/bench_sim.py
	$(BIN)/python bench/bench_experts.py

clean:
	rm -rf outputs .pytest_cache .mypy_cache .ruff_cache
