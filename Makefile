# Every target works on a fresh clone: the .venv is created (or refreshed when pyproject.toml
# changes) by the first target that needs it. torch is pinned to the CPU build here; GPU users
# install their own torch first (make venv keeps it, as pyproject.toml asks only for a range).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH_CPU ?= torch==2.13.0
NAME ?= ucc-minilm
STORAGE ?=
N ?= 2
GPUS ?=
VARIANT ?=
PORT ?= 8080
PROXY_PORT ?= 13000
# Only `make dashboard HOST=…` (or `make storage-proxy HOST=…`) changes it; an exported HOST does not.
HOST := 127.0.0.1

ifneq ($(strip $(DATA_DIR)),)
export DATA_DIR
endif
ifneq ($(strip $(STORAGE)),)
export HPO_STORAGE := $(STORAGE)
endif

.PHONY: venv study check workers report retrain score-trials dashboard storage-proxy test bench clean-runs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_CPU)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

study: venv
	$(BIN)/hpo study $(NAME) $(if $(VARIANT),--variant $(VARIANT))

check: venv
	$(BIN)/hpo check $(NAME)

workers: venv
	$(BIN)/hpo workers $(NAME) -n $(N) $(if $(GPUS),--gpus $(GPUS)) $(if $(VARIANT),--variant $(VARIANT))

report: venv
	$(BIN)/hpo report $(NAME)

retrain: venv
	$(BIN)/hpo retrain $(NAME)

score-trials: venv
	$(BIN)/hpo score-trials $(NAME)

dashboard: venv
	$(BIN)/hpo dashboard --host $(HOST) --port $(PORT)

storage-proxy: venv
	$(BIN)/hpo storage-proxy --host $(HOST) --port $(PROXY_PORT)

test: venv
	DATA_DIR=$(or $(DATA_DIR),../shared/data) $(BIN)/python -m pytest -q

bench: venv
	DATA_DIR=$(or $(DATA_DIR),../shared/data) $(BIN)/python -m benchmarks

clean-runs:
	rm -rf runs
