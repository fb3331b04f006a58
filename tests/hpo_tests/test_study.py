"""A real study: tiny models trained in worker processes, persisted in real SQLite."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from hpo.study import n_finished, open_study, run_study
from hpo.spec import load_spec
from tests.support import slice_dataset, tiny_ucc_spec


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return slice_dataset(tmp_path_factory.mktemp("data"), "ucc", {"train": 240, "val": 120, "test": 60})


def _spec(tmp_path, **overrides):
    overrides.setdefault("search_space", {"epochs": {"type": "categorical", "choices": [1, 2]}})
    return load_spec(str(tiny_ucc_spec(tmp_path / "tiny.yaml", **overrides)))


def test_pruned_and_complete_trials_persist_with_their_curves(tmp_path, small_data):
    spec = _spec(tmp_path, n_trials=2, objective={"metric": "macro_roc_auc"})
    url = f"sqlite:///{tmp_path}/study.db"
    # A real Optuna pruner with a deterministic verdict: from epoch 2 on, anything under AUC 0.99 is pruned.
    study = optuna.create_study(study_name=spec.name, storage=url, direction="maximize",
                                pruner=optuna.pruners.ThresholdPruner(lower=0.99, n_warmup_steps=2))
    study.enqueue_trial({"epochs": 1})
    study.enqueue_trial({"epochs": 2})
    run_study(spec, study, small_data)

    trials = optuna.load_study(study_name=spec.name, storage=url).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    complete, pruned = trials
    assert list(complete.intermediate_values) == [1] and complete.value == complete.intermediate_values[1]
    assert list(pruned.intermediate_values) == [1, 2]  # the worker stopped right after epoch 2
    for trial in trials:
        for epoch in trial.intermediate_values:
            metrics = trial.user_attrs[f"epoch_{epoch:03d}"]
            assert metrics["macro_roc_auc"] == pytest.approx(trial.intermediate_values[epoch])
            assert metrics["train_loss"] > 0 and "per_label" in metrics
    assert complete.user_attrs["best_epoch"] == 1


def test_resume_runs_only_the_missing_trials(tmp_path, small_data):
    url = f"sqlite:///{tmp_path}/study.db"
    spec = _spec(tmp_path, n_trials=1, search_space={"epochs": {"type": "categorical", "choices": [1]}})
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
    spec = _spec(tmp_path, n_trials=1, search_space={"precision": {"type": "categorical", "choices": ["fp16", "fp32"]}})
    study = open_study(spec, url)
    study.enqueue_trial({"precision": "fp16"})  # fp16 needs CUDA: on CPU this trial fails with a clear reason
    study.enqueue_trial({"precision": "fp32"})
    run_study(spec, study, small_data)
    trials = open_study(spec, url).trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert "fp16 needs a CUDA device" in trials[0].user_attrs["fail_reason"]


def test_resuming_with_a_changed_spec_is_refused_in_one_line(tmp_path, capsys):
    """Trials from two different searches must not mix in one study; n_trials may grow."""
    from hpo.cli import main

    data = slice_dataset(tmp_path / "data", "ucc", {"train": 40, "val": 48, "test": 20})  # every label has a val positive
    path = tiny_ucc_spec(tmp_path / "tiny.yaml", n_trials=1, training={"epochs": 1})
    url = f"sqlite:///{tmp_path}/study.db"
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 0

    tiny_ucc_spec(path, n_trials=2, training={"epochs": 1})  # more trials: resumes
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 0
    assert n_finished(optuna.load_study(study_name="tiny-ucc", storage=url)) == 2

    tiny_ucc_spec(path, n_trials=3, training={"epochs": 2}, search_space={"learning_rate": {"type": "float", "low": 1e-3, "high": 3e-3}})
    capsys.readouterr()
    assert main(["study", str(path), "--storage", url, "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'tiny-ucc'" in err and "search_space.learning_rate, training.epochs changed" in err and "optuna delete-study" in err
    assert n_finished(optuna.load_study(study_name="tiny-ucc", storage=url)) == 2  # nothing lost, nothing run
