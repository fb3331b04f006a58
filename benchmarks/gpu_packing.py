"""GPU packing: trials per hour with 1, 2, 4 and `auto` trials per GPU, side by side in one run.

Each setting runs the same study through `hpo workers --gpus … --per-gpu K`: MiniLM-sized trials
(6 layers × 384, random weights built from the config, MiniLM's tokenizer) on UCC train, one
epoch each, random learning rates. `auto` starts up to hpo.study.workers.AUTO_MAX_PER_GPU workers
per GPU and admits a trial only while the measured peaks fit. Needs CUDA: elsewhere it says so
and measures nothing.

    python -m benchmarks.gpu_packing [--quick] [--trials N] [--gpus 0,1] [--settings 1,2,4,auto]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from testing.data import REPO, UCC_LABELS, default_data_root
from testing.workers import most_at_once

MINILM_SHAPE = {
    "model_type": "bert",
    "num_hidden_layers": 6,
    "hidden_size": 384,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
}


def spec(name: str, n_trials: int, epochs: int) -> dict:
    return {
        "name": name,
        "task": "multi_label",
        "data": {"dir": "ucc", "text_column": "comment", "label_columns": list(UCC_LABELS)},
        "model": {
            "name_or_path": "packaged:all-MiniLM-L6-v2",
            "from_config": MINILM_SHAPE,
            "max_length": 128,
        },
        "training": {"epochs": epochs, "batch_size": 32, "precision": "auto"},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True}
        },
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "n_trials": n_trials,
    }


def run_setting(
    per_gpu: str, gpus: str, n_trials: int, epochs: int, data_dir: Path, tmp: Path
) -> dict:
    """One study with `per_gpu` trials per GPU; its wall time and what its trials record."""
    import optuna

    from hpo import stored

    name = f"packing-{per_gpu}"
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec(name, n_trials, epochs), sort_keys=False))
    url = f"sqlite:///{tmp / 'optuna.db'}"
    cmd = [
        sys.executable,
        "-m",
        "hpo",
        "workers",
        str(path),
        "--gpus",
        gpus,
        "--per-gpu",
        per_gpu,
        "--storage",
        url,
        "--data-dir",
        str(data_dir),
    ]
    start = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"}
    )
    seconds = time.perf_counter() - start
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    peaks = [
        t.user_attrs[stored.PEAK_MEMORY_MB]
        for t in trials
        if stored.PEAK_MEMORY_MB in t.user_attrs
    ]
    oom = [
        t
        for t in trials
        if str(t.user_attrs.get(stored.FAIL_REASON, "")).startswith("out of memory")
    ]
    return {
        "setting": per_gpu,
        "exit": done.returncode,
        "seconds": seconds,
        "complete": len(complete),
        "failed": sum(t.state == optuna.trial.TrialState.FAIL for t in trials),
        "oom": len(oom),
        "trials_per_hour": 3600 * len(complete) / seconds,
        "peak_mb": max(peaks) if peaks else float("nan"),
        "most_at_once": most_at_once(complete),
        "stderr": done.stderr.strip().splitlines()[-1:] if done.returncode else [],
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.gpu_packing", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="4 trials per setting: a smoke run")
    parser.add_argument(
        "--trials", type=int, default=None, help="trials per setting (default 24; 4 with --quick)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--gpus", default=None, help="devices (default: every visible one)")
    parser.add_argument(
        "--settings", default="1,2,4,auto", help="per-GPU settings to compare (default 1,2,4,auto)"
    )
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_packing: needs a CUDA device; nothing measured on this machine")
        return 0
    gpus = args.gpus or ",".join(str(i) for i in range(torch.cuda.device_count()))
    n_trials = args.trials or (4 if args.quick else 24)
    data_dir = default_data_root()
    print(
        f"GPU {torch.cuda.get_device_name()} × {len(gpus.split(','))}; {n_trials} MiniLM-sized trials of {args.epochs} epoch(s) per setting"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="packing-") as tmp:
        for setting in args.settings.split(","):
            rows.append(run_setting(setting, gpus, n_trials, args.epochs, data_dir, Path(tmp)))
            r, base = rows[-1], rows[0]
            print(f"per GPU {r['setting']:>4}: {r['trials_per_hour']:8.0f} trials/h ({r['trials_per_hour'] / base['trials_per_hour']:.2f}× per-GPU {base['setting']}), "
                  f"{r['complete']} complete, {r['failed']} failed ({r['oom']} out of memory), at most {r['most_at_once']} at once, "
                  f"peak {r['peak_mb']:.0f} MiB, {r['seconds']:.0f} s, exit {r['exit']} {' '.join(r['stderr'])}", flush=True)  # fmt: skip
    return 0 if all(r["exit"] == 0 and r["oom"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
