# kimnet: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

# make train / finetune: each variable maps to one field of the experiment config
# (python pipelines/train.py --help lists them all); ARGS passes further overrides.
CONFIG ?=
RECIPE ?=
QUICK ?=
MODEL ?=
DATASET ?=
EPOCHS ?=
BATCH ?=
AUGMENT ?=
RUN ?=
ARGS ?=
FROM ?=
FREEZE ?=
WORKERS ?= 2
NEW_HEAD ?=
config_file = $(or $(CONFIG),$(if $(RECIPE),configs/recipes/$(RECIPE).py),configs/train.py)$(if $(QUICK),:quick)
train_flags = $(if $(or $(CONFIG),$(RECIPE),$(QUICK)),--config=$(config_file)) \
	$(if $(MODEL),--config.model.name=$(MODEL)) $(if $(DATASET),--config.data.name=$(DATASET)) \
	$(if $(EPOCHS),--config.schedule.epochs=$(EPOCHS)) $(if $(BATCH),--config.data.batch_size=$(BATCH)) \
	$(if $(AUGMENT),--config.augment.ops=$(AUGMENT)) $(if $(RUN),--config.runtime.run_name=$(RUN)) \
	$(if $(FROM),$(if $(filter imagenet %.h5,$(FROM)),--config.transfer.weights=$(FROM),--config.transfer.init_from=$(FROM))) \
	$(if $(FREEZE),--config.transfer.freeze=$(FREEZE)) $(if $(NEW_HEAD),--config.transfer.new_head=true) \
	$(ARGS)

# make serve variables
MODEL_DIR ?= savedmodels
HOST ?= 127.0.0.1
PORT ?= 8501
LOGDIR ?= runs

.PHONY: help install data test test-slow lint format train train-multiworker finetune tensorboard \
	models bench \
	bench-jit profile time-to-accuracy bench-input bench-serve serve transfer-study \
	compare-architectures study-augmentation study-regularization clean

help:
	@echo "make install              virtual environment in $(VENV), kimnet (editable), Fashion-MNIST"
	@echo "make test                 fast test suite (make test-slow: the slow one)"
	@echo "make train MODEL=name     train on DATASET (fashion_mnist), log to runs/, export to savedmodels/"
	@echo "   variables: EPOCHS= DATASET= BATCH= AUGMENT= RUN= QUICK=1 CONFIG=file.py|runs/<name>"
	@echo "make train RECIPE=name     a full recipe from configs/recipes/ (fmnist_mobilenetv2, ...)"
	@echo "   ARGS='--config.section.field=value ...' (python pipelines/train.py --help lists the fields)"
	@echo "make train-multiworker WORKERS=2  the same as WORKERS local tf.distribute workers (TF_CONFIG each)"
	@echo "make finetune FROM=...     fine-tune from a run (runs/<name>), imagenet or a .weights.h5"
	@echo "   variables: those of make train, FREEZE=none|backbone|stages:K|bn, NEW_HEAD=1"
	@echo "make compare-architectures  one model per family, same budget, on Fashion-MNIST (QUICK=1, MODELS=a,b)"
	@echo "make transfer-study       pretrain on Fashion-MNIST 0-4, compare transfer methods on 5-9 (QUICK=1)"
	@echo "make study-augmentation   one model on 1,000 images, one row per augmentation (QUICK=1)"
	@echo "make study-regularization the same budget: dropout, batch norm, weight decay, smoothing (QUICK=1)"
	@echo "   every study: ARGS=--overwrite replaces another definition's results; ONLY=row,row"
	@echo "make tensorboard          TensorBoard over every run in $(LOGDIR)/"
	@echo "make models               every registered model: parameters, multiply-adds, stages"
	@echo "make bench                training images/s: kimnet vs plain Keras fit vs PyTorch, side by side,"
	@echo "   3 models, 5 interleaved rounds, about an hour on 2 idle cores (QUICK=1: about 4 minutes;"
	@echo "   TORCH_PYTHON=python with torch; ARGS='--models=... --rounds=N'); writes reports/bench/"
	@echo "make time-to-accuracy     test top-1 against time, kimnet vs PyTorch, one recipe (TORCH_PYTHON=, QUICK=1)"
	@echo "make bench-jit            training images/s with and without XLA, per family (reports/bench-jit/)"
	@echo "make profile              where a training step spends its time, by op type (reports/profile/)"
	@echo "make bench-input / bench-serve  input-pipeline throughput table / server load benchmark"
	@echo "make serve                TF-Serving-compatible REST server for $(MODEL_DIR)/ on $(HOST):$(PORT)"
	@echo "make lint / format        ruff"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip

install: $(PY)
	$(PY) -m pip install -e ".[dev]"
	$(MAKE) data

# Fashion-MNIST: from Debian's dataset-fashion-mnist when present (installed here when
# running as root with apt), otherwise downloaded by TFDS.
data: $(PY)
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get install -y dataset-fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist) || true; \
	fi
	$(PY) -m kimnet.data prepare fashion_mnist

test: $(PY)
	$(PY) -m pytest -q

test-slow: $(PY)
	$(PY) -m pytest -q -m slow

lint: $(PY)
	$(VENV)/bin/ruff check kimnet pipelines configs tests benchmarks
	$(VENV)/bin/ruff format --check kimnet pipelines configs tests benchmarks

format: $(PY)
	$(VENV)/bin/ruff format kimnet pipelines configs tests benchmarks
	$(VENV)/bin/ruff check --fix kimnet pipelines configs tests benchmarks

train: $(PY)
	$(PY) pipelines/train.py $(train_flags)

train-multiworker: $(PY)
	$(PY) -m kimnet.launch --workers=$(WORKERS) -- $(PY) pipelines/train.py $(train_flags) \
		--config.runtime.strategy=multi_worker

finetune: $(PY)
	@test -n "$(FROM)" || { echo "error: make finetune needs FROM=runs/<name>, imagenet or a .weights.h5 file." >&2; exit 2; }
	$(PY) pipelines/train.py $(train_flags)

compare-architectures: $(PY)
	$(PY) pipelines/study.py --study=configs/architecture_study.py$(if $(QUICK),:quick) \
		--workdir=$(LOGDIR) $(if $(MODELS),--only=$(shell echo $(MODELS) | sed 's/\([^,]*\)/arch-\1/g')) \
		$(if $(ONLY),--only=$(ONLY)) $(ARGS)

transfer-study: $(PY)
	$(PY) pipelines/study.py --study=configs/transfer_study.py$(if $(QUICK),:quick) \
		--workdir=$(LOGDIR) $(if $(ONLY),--only=$(ONLY)) $(ARGS)

study-augmentation study-regularization: study-%: $(PY)
	$(PY) pipelines/study.py --study=configs/$*_study.py$(if $(QUICK),:quick) \
		--workdir=$(LOGDIR) $(if $(ONLY),--only=$(ONLY)) $(ARGS)

tensorboard: $(PY)
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --host $(HOST)

models: $(PY)
	$(PY) -m kimnet.models

bench: $(PY)
	$(PY) benchmarks/bench_train.py $(if $(QUICK),--rounds=1 --steps=4 --models=mobilenetv2-32) \
		$(if $(TORCH_PYTHON),--torch-python=$(TORCH_PYTHON)) $(ARGS)

time-to-accuracy: $(PY)
	$(PY) benchmarks/time_to_accuracy.py $(if $(QUICK),--quick) \
		$(if $(TORCH_PYTHON),--torch-python=$(TORCH_PYTHON)) $(ARGS)

bench-jit: $(PY)
	$(PY) benchmarks/bench_jit.py $(ARGS)

profile: $(PY)
	$(PY) benchmarks/profile_step.py $(ARGS)

bench-input: $(PY)
	$(PY) benchmarks/bench_input.py

bench-serve: $(PY)
	$(PY) benchmarks/bench_serve.py

serve: $(PY)
	$(VENV)/bin/kimnet serve --model_dir $(MODEL_DIR) --host $(HOST) --port $(PORT)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
