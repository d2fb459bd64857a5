# kimnet: `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2

# make train / finetune variables
MODEL ?= mobilenetv2
DATASET ?= fashion_mnist
EPOCHS ?=
BATCH ?=
AUGMENT ?=
RUN ?=
ARGS ?=
train_flags = --model=$(MODEL) --dataset=$(DATASET) \
	$(if $(EPOCHS),--epochs=$(EPOCHS)) $(if $(BATCH),--batch_size=$(BATCH)) \
	$(if $(AUGMENT),--augment=$(AUGMENT)) $(if $(RUN),--run_name=$(RUN)) $(ARGS)

# make finetune: the source (a run directory, imagenet or a .weights.h5 file) and freezing
FROM ?=
FREEZE ?=
finetune_source = $(if $(FROM),$(if $(filter imagenet %.h5,$(FROM)),--weights=$(FROM),--init_from=$(FROM)))
finetune_flags = $(finetune_source) $(if $(FREEZE),--freeze=$(FREEZE)) $(train_flags)
# studies: QUICK=1 runs the shrunk variant of the same experiment
QUICK ?=

# make serve variables
MODEL_DIR ?= savedmodels
HOST ?= 127.0.0.1
PORT ?= 8501
LOGDIR ?= runs

.PHONY: help install data test test-slow lint format train finetune tensorboard models bench \
	bench-serve serve transfer-study compare-architectures clean

help:
	@echo "make install              virtual environment in $(VENV), kimnet (editable), Fashion-MNIST"
	@echo "make test                 fast test suite (make test-slow: the slow one)"
	@echo "make train MODEL=name     train on DATASET (fashion_mnist), log to runs/, export to savedmodels/"
	@echo "   variables: EPOCHS= DATASET= BATCH= AUGMENT= RUN= ARGS='--flag=value ...'"
	@echo "make finetune FROM=...     fine-tune MODEL from a run (runs/<name>), imagenet or a .weights.h5"
	@echo "   variables: those of make train, FREEZE=none|backbone|stages:K|bn; --schedule etc. in ARGS"
	@echo "make compare-architectures  one model per family, same budget, on Fashion-MNIST (QUICK=1, MODELS=a,b)"
	@echo "make transfer-study       pretrain on Fashion-MNIST 0-4, compare transfer methods on 5-9 (QUICK=1)"
	@echo "make tensorboard          TensorBoard over every run in $(LOGDIR)/"
	@echo "make models               every registered model: parameters, multiply-adds, stages"
	@echo "make bench / bench-serve  input-pipeline and training throughput / server load benchmark"
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

finetune: $(PY)
	$(PY) pipelines/finetune.py $(finetune_flags)

compare-architectures: $(PY)
	$(PY) pipelines/architecture_study.py --config=configs/architecture_study.py --workdir=$(LOGDIR) \
		$(if $(QUICK),--quick) $(if $(MODELS),--models=$(MODELS))

transfer-study: $(PY)
	$(PY) pipelines/transfer_study.py $(if $(QUICK),--quick) $(ARGS)

tensorboard: $(PY)
	$(VENV)/bin/tensorboard --logdir $(LOGDIR) --host $(HOST)

models: $(PY)
	$(PY) -m kimnet.models

bench: $(PY)
	$(PY) benchmarks/bench_input.py

bench-serve: $(PY)
	$(PY) benchmarks/bench_serve.py

serve: $(PY)
	$(VENV)/bin/kimnet serve --model_dir $(MODEL_DIR) --host $(HOST) --port $(PORT)

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache
