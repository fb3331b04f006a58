"""A trial that runs out of memory on its own is infeasible: PRUNED with a violated constraint
and its reason kept, not counted towards n_trials, and avoided by TPE afterwards."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import load_spec
from hpo.study import n_finished, open_study, run_study
from hpo.trial.feasibility import is_infeasible
from testing.specs import sleep_spec

SPACE = {
    "batch_size": {"type": "categorical", "choices": [16, 32, 64]},
    "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
}


START = [(64, 1e-3), (16, 1e-3), (64, 2e-3), (32, 1e-3), (64, 5e-4), (32, 3e-3)]


def _study(folder: Path, trainer: str, max_failures: int | None = None) -> optuna.Study:
    folder.mkdir()
    spec = load_spec(str(sleep_spec(folder, n_trials=16, trainer=f"tests.hpo_tests.instant_trainers:{trainer}", search_space=SPACE,
                                    sampler={"type": "tpe", "seed": 0, "n_startup_trials": 6}, training={"epochs": 1})))  # fmt: skip
    study = open_study(spec, f"sqlite:///{folder}/optuna.db")
    for batch_size, lr in START:  # the same start-up trials for every run of the test
        study.enqueue_trial({"batch_size": batch_size, "learning_rate": lr})
    run_study(spec, study, folder, max_failures=max_failures)
    return study


def _proposed_64(study: optuna.Study) -> int:
    return sum(t.params["batch_size"] == 64 for t in study.trials[len(START) : len(START) + 16])


def test_out_of_memory_trials_are_infeasible_and_tpe_steers_away(tmp_path: Path) -> None:
    study = _study(tmp_path / "oom", "oom_at_batch_64")

    oom = [t for t in study.trials if t.params["batch_size"] == 64]
    assert all(t.state == TrialState.PRUNED and is_infeasible(t) for t in oom)
    assert all(
        t.user_attrs[stored.FAIL_REASON].startswith("out of memory: CUDA out of memory")
        for t in oom
    )
    feasible = [t for t in study.trials if t.params["batch_size"] != 64]
    assert all(t.constraints == {stored.OOM_CONSTRAINT: 0.0} for t in feasible)
    assert n_finished(study) == 16 == len(feasible)  # the study trained its 16 trials in full
    assert _proposed_64(study) <= 3  # it ranks infeasible trials below every feasible one


def test_as_plain_failures_tpe_would_propose_the_batch_size_again_and_again(
    tmp_path: Path,
) -> None:
    """Why: TPE never sees FAIL trials, and to it an unseen category looks as promising as ever."""
    with pytest.raises(HpoError, match="10 trials failed in a row"):
        _study(tmp_path / "fail", "crash_at_batch_64", max_failures=10)
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{tmp_path}/fail/optuna.db")[0],
                              storage=f"sqlite:///{tmp_path}/fail/optuna.db")  # fmt: skip
    assert _proposed_64(study) >= 10
