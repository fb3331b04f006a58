"""A real study: tiny models (or the sleep trainer) trained in processes of their own, persisted
in real SQLite, with Optuna's own pruners."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import load_spec
from hpo.study import n_finished, open_study, run_study
from testing.data import RealData
from testing.specs import sleep_spec, tiny_ucc_spec
from testing.studies import run_tiny_study


@pytest.fixture(scope="module")
def small_data(tmp_path_factory, real_data: RealData):
    return real_data.slice(
        tmp_path_factory.mktemp("data"), "ucc", {"train": 240, "val": 120, "test": 60}
    )


def _spec(tmp_path, **overrides):
    overrides.setdefault("search_space", {"epochs": {"type": "categorical", "choices": [1, 2]}})
    return load_spec(str(tiny_ucc_spec(tmp_path / "tiny.yaml", **overrides)))


def test_pruned_and_complete_trials_persist_with_their_curves(tmp_path, small_data):
    spec = _spec(tmp_path, n_trials=2, objective={"metric": "macro_roc_auc"},
                 search_space={"epochs": {"type": "categorical", "choices": [1, 3]}})  # fmt: skip
    url = f"sqlite:///{tmp_path}/study.db"
    # A real Optuna pruner with a deterministic verdict: from epoch 2 on, anything under AUC 0.99
    # is pruned (a trial's last epoch never is).
    study = optuna.create_study(
        study_name=spec.name,
        storage=url,
        direction="maximize",
        pruner=optuna.pruners.ThresholdPruner(lower=0.99, n_warmup_steps=2),
    )
    study.enqueue_trial({"epochs": 1})
    study.enqueue_trial({"epochs": 3})
    run_study(spec, study, small_data)

    trials = optuna.load_study(study_name=spec.name, storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    complete, pruned = trials
    assert (
        list(complete.intermediate_values) == [1]
        and complete.value == complete.intermediate_values[1]
    )
    assert list(pruned.intermediate_values) == [1, 2]  # the worker stopped right after epoch 2
    for trial in trials:
        for epoch in trial.intermediate_values:
            metrics = trial.user_attrs[f"epoch_{epoch:03d}"]
            assert metrics["macro_roc_auc"] == pytest.approx(trial.intermediate_values[epoch])
            assert metrics["train_loss"] > 0 and "per_label" in metrics
    assert complete.user_attrs["best_epoch"] == 1


def test_resume_runs_only_the_missing_trials(tmp_path, small_data):
    url = f"sqlite:///{tmp_path}/study.db"
    spec = _spec(
        tmp_path, n_trials=1, search_space={"epochs": {"type": "categorical", "choices": [1]}}
    )
    run_study(spec, open_study(spec, url), small_data)
    assert n_finished(open_study(spec, url)) == 1

    run_study(spec, open_study(spec, url), small_data)  # already done: nothing runs
    assert len(open_study(spec, url).trials) == 1

    more = spec.model_copy(update={"n_trials": 2})
    run_study(more, open_study(more, url), small_data)
    study = open_study(more, url)
    assert n_finished(study) == 2 and len(study.trials) == 2


def test_failed_trial_keeps_its_reason_and_the_study_goes_on(tmp_path, small_data):
    url = f"sqlite:///{tmp_path}/study.db"
    path = tiny_ucc_spec(
        tmp_path / "tiny.yaml",
        n_trials=1,
        trainer="testing.fault_trainers:raise_when_lr_above_1",
        search_space={"learning_rate": {"type": "categorical", "choices": [5.0, 1e-3]}},
    )
    run_tiny_study(
        path, url, small_data, enqueue=[{"learning_rate": 5.0}, {"learning_rate": 1e-3}]
    )  # the first one fails
    failed, complete = open_study(load_spec(str(path)), url).trials
    assert (failed.state, complete.state) == (TrialState.FAIL, TrialState.COMPLETE)
    assert failed.user_attrs["fail_reason"].startswith(
        "InjectedFault: injected fault at learning rate 5"
    )
    assert (
        "Traceback" in failed.user_attrs["fail_reason"]
        and complete.user_attrs["epoch_002"]["train_loss"] > 0
    )


def test_resuming_with_a_changed_spec_is_refused_in_one_line(
    tmp_path, capsys, real_data: RealData
):
    """Trials from two different searches must not mix in one study; n_trials may grow."""
    from hpo.cli import main

    data = real_data.slice(
        tmp_path / "data", "ucc", {"train": 40, "val": 48, "test": 20}
    )  # every label has a val positive
    path = tiny_ucc_spec(tmp_path / "tiny.yaml", n_trials=1, training={"epochs": 1})
    url = f"sqlite:///{tmp_path}/study.db"
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 0

    tiny_ucc_spec(path, n_trials=2, training={"epochs": 1})  # more trials: resumes
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 0
    assert n_finished(optuna.load_study(study_name="tiny-ucc", storage=url)) == 2

    tiny_ucc_spec(
        path,
        n_trials=3,
        training={"epochs": 2},
        search_space={"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-3}},
    )
    capsys.readouterr()
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert (
        "'tiny-ucc'" in err
        and "search_space.learning_rate, training.epochs changed" in err
        and "optuna delete-study" in err
    )
    assert (
        n_finished(optuna.load_study(study_name="tiny-ucc", storage=url)) == 2
    )  # nothing lost, nothing run


def _pruned_study(tmp_path, monkeypatch, pruner: str, learning_rates: list[float]) -> optuna.Study:
    """The sleep trainer's 3 epochs per trial (best at learning rate 1e-3), queued in this order.
    The name is fixed: Hyperband puts each trial in a bracket by a hash of it and the trial's number."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0")
    path = sleep_spec(
        tmp_path, name=f"prune-{pruner}", n_trials=len(learning_rates), pruner={"type": pruner}
    )
    return run_tiny_study(
        path,
        f"sqlite:///{tmp_path}/study.db",
        tmp_path,
        enqueue=[{"learning_rate": lr} for lr in learning_rates],
    )


def test_successive_halving_prunes_all_but_the_best_at_the_first_rung(tmp_path, monkeypatch):
    """min_resource 1, reduction factor 3: at epoch 1 a trial goes on only if it is the best of
    fewer than 6 trials there (the top third, at least one)."""
    study = _pruned_study(tmp_path, monkeypatch, "successive_halving", [1e-3, 1e-5, 1e-1, 3e-4])
    assert isinstance(study.pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert [(t.state, list(t.intermediate_values)) for t in study.trials] == [
        (TrialState.COMPLETE, [1, 2, 3])
    ] + [(TrialState.PRUNED, [1])] * 3


def test_hyperband_runs_its_brackets_up_to_the_specs_epochs(tmp_path, monkeypatch):
    """Maximum resource 3 epochs, reduction factor 3: two brackets, one judging trials at epochs
    1 and 3, the other at epoch 3 only (these 8 trials fall in both). Epoch 3 is the trials' last,
    which is never pruned: its compute is spent. The best learning rate is never pruned."""
    study = _pruned_study(
        tmp_path, monkeypatch, "hyperband", [1e-3, 1e-5, 1e-1, 3e-4, 2e-3, 1e-2, 1e-4, 1.5e-3]
    )
    assert isinstance(study.pruner, optuna.pruners.HyperbandPruner)
    assert n_finished(study) == 8 and study.trials[0].state == TrialState.COMPLETE
    pruned_at = {max(t.intermediate_values) for t in study.trials if t.state == TrialState.PRUNED}
    assert pruned_at == {1}
