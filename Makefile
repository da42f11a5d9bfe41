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

.PHONY: install system-deps demo vlm test lint bench clean

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	bash .ci/system-deps
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found (install python3.12 or set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The main job: a grounded VLM -> demonstrations -> the VLA fine-tuned (and co-trained) from it -> evaluation
# on held-out seeds, everything under outputs/demo/<task>; each stage's time is printed. The VLM is the one shipped
# in envs/so101/assets/vlm_tiny (made by `make vlm`); DEMO_PRETRAIN=1 pretrains it here instead (into
# $(DEMO)/vlm). Re-running reuses what is there (the VLM, the dataset, the checkpoints).
DEMO_TASK ?= touch
DEMO ?= outputs/demo/$(DEMO_TASK)
DEMO_EPISODES ?= 100
DEMO_STEPS ?= 2000
DEMO_EVAL ?= 100
DEMO_PRETRAIN ?= 0
DEMO_COTRAIN ?= 0
# How the evaluation executes chunks: ACT-style temporal ensembling (a chunk every step, overlapping chunks
# blended) was the best of the strategies tried on validation seeds (bench/README.md); sync with
# DEMO_ACTIONS actions per chunk is the plain alternative. The evaluation runs in simulated time with
# the inference delay fixed at its minimum (runner.measure_compute=false: one tick for ensembling), so
# that its figures do not depend on how busy the machine is (bench/README.md).
DEMO_STRATEGY ?= ensemble
DEMO_ACTIONS ?= 10
SHIPPED_VLM := envs/so101/assets/vlm_tiny
VLM_ARGS ?=
demo: install
	@set -e; t0=$$(date +%s); \
	if [ "$(DEMO_PRETRAIN)" = 1 ]; then vlm=$(DEMO)/vlm/model; \
		if [ ! -f $$vlm/config.json ]; then $(BIN)/vla-pretrain output_dir=$(DEMO)/vlm resume=true $(VLM_ARGS); \
		else echo "reusing the VLM in $$vlm"; fi; \
	else vlm=$(SHIPPED_VLM); echo "the VLM: $$vlm (shipped; DEMO_PRETRAIN=1 pretrains one here)"; fi; \
	t1=$$(date +%s); \
	if [ ! -f $(DEMO)/dataset/meta/info.json ]; then \
		$(BIN)/vla-record robot.task=$(DEMO_TASK) policy=scripted episodes=$(DEMO_EPISODES) \
			dataset.root=$(DEMO)/dataset hydra.run.dir=$(DEMO)/record; \
	else echo "reusing the demonstrations in $(DEMO)/dataset"; fi; \
	t2=$$(date +%s); \
	$(BIN)/vla-train dataset.root=$(DEMO)/dataset output_dir=$(DEMO)/train resume=true \
		model.backbone.pretrained=$$vlm trainer.cotrain.ratio=$(DEMO_COTRAIN) \
		trainer.steps=$(DEMO_STEPS) trainer.save_every=500 model.chunk_size=30 optim.lr=1e-3; \
	t3=$$(date +%s); \
	$(BIN)/vla-rollout robot.task=$(DEMO_TASK) policy=vla policy.checkpoint=$(DEMO)/train/checkpoints/last \
		policy.n_action_steps=$(DEMO_ACTIONS) runner.strategy=$(DEMO_STRATEGY) runner.measure_compute=false \
		episodes=$(DEMO_EVAL) videos=4 \
		output_dir=$(DEMO); \
	t4=$$(date +%s); \
	echo "stage times: VLM $$((t1-t0)) s, recording $$((t2-t1)) s, fine-tuning $$((t3-t2)) s, evaluation $$((t4-t3)) s; total $$((t4-t0)) s"

# The shipped VLM (envs/so101/assets/vlm_tiny): vla-pretrain with its defaults, then the final model (the
# shipped one, see bench/README.md; or, with VLM_STEP=NNNNNN, that checkpoint's model files) copied there
# and evaluated on held-out scenes (its eval.json).
VLM_STEP ?=
VLM_FILES := config.json generation_config.json model.safetensors patch_head.safetensors tokenizer.json \
	tokenizer_config.json vlm_config.json
vlm: install
	$(BIN)/vla-pretrain output_dir=outputs/vlm_tiny resume=true $(VLM_ARGS)
	@set -e; src=outputs/vlm_tiny/model; if [ -n "$(VLM_STEP)" ]; then src=outputs/vlm_tiny/checkpoints/$(VLM_STEP); fi; \
	rm -rf $(SHIPPED_VLM) && mkdir -p $(SHIPPED_VLM); \
	for f in $(VLM_FILES); do if [ -f $$src/$$f ]; then cp $$src/$$f $(SHIPPED_VLM)/; fi; done
	$(BIN)/vla-vlm-eval model_dir=$(SHIPPED_VLM) output_dir=outputs/vlm_tiny/shipped_eval
	cp outputs/vlm_tiny/shipped_eval/eval.json $(SHIPPED_VLM)/eval.json

lint: install
	$(BIN)/ruff check vla policies envs hardware tests bench
	$(BIN)/ruff format --check vla policies envs hardware tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

bench: install
	$(BIN)/python -m bench.bench_sim
	$(BIN)/python -m bench.bench_experts

clean:
	rm -rf outputs .pytest_cache .mypy_cache .ruff_cache
