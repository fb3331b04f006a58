"""GP, CMA-ES and QMC samplers; Wilcoxon, patient and threshold pruners: each on a real study
(SQLite, Optuna, trial processes) with a trainer that answers at once."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import load_spec
from hpo.study import open_study, run_study
from testing.specs import sleep_spec

TRAINER = "tests.hpo_tests.instant_trainers:instant"
SPACE = {
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
    "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
}


def _run(tmp_path: Path, enqueue: tuple[dict, ...] = (), **overrides) -> optuna.Study:
    overrides = {"trainer": TRAINER, "search_space": SPACE, **overrides}
    spec = load_spec(str(sleep_spec(tmp_path, **overrides)))
    study = open_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    for params in enqueue:
        study.enqueue_trial(params)
    run_study(spec, study, tmp_path)
    return study


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("gp", optuna.samplers.GPSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("qmc", optuna.samplers.QMCSampler),
    ],
)
def test_each_sampler_runs_a_real_study(tmp_path: Path, kind: str, cls: type) -> None:
    study = _run(
        tmp_path, n_trials=6, training={"epochs": 1}, sampler={"type": kind, "n_startup_trials": 3}
    )
    assert isinstance(study.sampler, cls)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 6
    assert (
        len({t.params["learning_rate"] for t in trials}) == 6
    )  # the modelled trials are new points


def test_qmc_points_spread_over_the_range(tmp_path: Path) -> None:
    study = _run(tmp_path, n_trials=8, training={"epochs": 1}, sampler={"type": "qmc"})
    lrs = sorted(t.params["learning_rate"] for t in study.trials)
    assert lrs[0] < 1e-4 and lrs[-1] > 1e-2  # Sobol covers both ends of the log range in 8 points


def test_wilcoxon_prunes_a_trial_behind_the_best_at_every_step(tmp_path: Path) -> None:
    study = _run(tmp_path, enqueue=({"learning_rate": 1e-3, "warmup_ratio": 0.0}, {"learning_rate": 1e-5, "warmup_ratio": 0.0}),
                 n_trials=2, training={"epochs": 6}, pruner={"type": "wilcoxon", "p_threshold": 0.1})  # fmt: skip
    best, behind = study.trials
    assert isinstance(study.pruner, optuna.pruners.WilcoxonPruner)
    assert best.state == TrialState.COMPLETE
    # One-sided signed-rank p after k steps all worse is 2^-k: under 0.1 from step 4.
    assert behind.state == TrialState.PRUNED and behind.last_step == 4


def test_threshold_prunes_below_lower(tmp_path: Path) -> None:
    study = _run(tmp_path, enqueue=({"learning_rate": 1e-3, "warmup_ratio": 0.0}, {"learning_rate": 1e-5, "warmup_ratio": 0.0}),
                 n_trials=2, training={"epochs": 3}, pruner={"type": "threshold", "lower": 0.3, "n_warmup_steps": 1})  # fmt: skip
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert study.trials[1].last_step == 1  # score(1e-5, 1) = 0.167 < 0.3


def test_the_last_epoch_is_never_pruned(tmp_path: Path) -> None:
    study = _run(tmp_path, enqueue=({"learning_rate": 1e-5, "warmup_ratio": 0.0},), n_trials=1,
                 training={"epochs": 1}, pruner={"type": "threshold", "lower": 0.3, "n_warmup_steps": 1})  # fmt: skip
    (trial,) = study.trials
    assert trial.state == TrialState.COMPLETE and trial.value < 0.3  # below lower, but finished


@pytest.mark.parametrize(("kind", "pruned"), [("median", True), ("patient", False)])
def test_patient_pruner_spares_a_trial_that_still_improves(
    tmp_path: Path, kind: str, pruned: bool
) -> None:
    good = [{"learning_rate": lr, "warmup_ratio": 0.0} for lr in (1e-3, 2e-3)]
    study = _run(tmp_path, enqueue=(*good, {"learning_rate": 1e-5, "warmup_ratio": 0.0}), n_trials=3,
                 training={"epochs": 3}, pruner={"type": kind, "n_startup_trials": 2, "patience": 1})  # fmt: skip
    # The median pruner stops the bad trial at once; the patient one waits while it improves.
    assert (study.trials[2].state == TrialState.PRUNED) is pruned


def test_threshold_pruner_needs_a_bound(tmp_path: Path) -> None:
    from hpo.errors import SpecError

    with pytest.raises(SpecError, match="threshold needs lower or upper"):
        load_spec(str(sleep_spec(tmp_path, pruner={"type": "threshold"})))
