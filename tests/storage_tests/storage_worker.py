"""A separate worker process for the storage tests; the storage URL comes from HPO_STORAGE.

storage_worker.py trials STUDY N   run N quick trials (creating the study if needed)
storage_worker.py hang STUDY       start one trial, print RUNNING, then sleep until killed
"""

from __future__ import annotations

import sys
import time

import optuna

from storage import open_storage, resolve_storage_url, with_retries


def quick(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(3):
        trial.report(x * step, step)
    trial.set_user_attr("worker", "quick")
    return x


def hang(trial: optuna.Trial) -> float:
    trial.suggest_float("lr", 1e-5, 1e-2, log=True)
    trial.report(0.5, 0)
    trial.set_user_attr("worker", "hang")
    print("RUNNING", trial.number, flush=True)
    time.sleep(600)
    return 0.0


def main(mode: str, study_name: str, n_trials: int = 1) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(resolve_storage_url(), heartbeat_interval=1, grace_period=2)
    study = with_retries(
        lambda: optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True),
        what="create_study",
    )
    study.optimize(quick if mode == "trials" else hang, n_trials=n_trials)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:]))
