# Two commands set everything up on a fresh machine:
#   make demo   record demonstrations, train the tiny VLA, evaluate it (the main job)
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

# The main job: demonstrations -> training -> evaluation on held-out seeds, everything under outputs/demo.
# Re-running it reuses what is there (the dataset, the checkpoints) and only does what is missing.
DEMO ?= outputs/demo
DEMO_TASK ?= touch
DEMO_EPISODES ?= 100
DEMO_STEPS ?= 2500
DEMO_EVAL ?= 100
demo: install
	@if [ ! -f $(DEMO)/dataset/meta/info.json ]; then \
		$(BIN)/vla-record env.task=$(DEMO_TASK) policy=scripted episodes=$(DEMO_EPISODES) \
			dataset.root=$(DEMO)/dataset hydra.run.dir=$(DEMO)/record; \
	else echo "reusing the demonstrations in $(DEMO)/dataset"; fi
	$(BIN)/vla-train dataset.root=$(DEMO)/dataset output_dir=$(DEMO)/train resume=true \
		trainer.steps=$(DEMO_STEPS) trainer.save_every=500 model.chunk_size=30 model.backbone.image_size=96 \
		optim.lr=1e-3
	$(BIN)/vla-rollout env.task=$(DEMO_TASK) policy=vla policy.checkpoint=$(DEMO)/train/checkpoints/last \
		policy.n_action_steps=10 episodes=$(DEMO_EVAL) videos=4 output_dir=$(DEMO)

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
