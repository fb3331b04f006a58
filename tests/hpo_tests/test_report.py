"""Study reports: the tables hold the trials' own numbers, for any study (failed and pruned
trials, other search spaces, too few trials), they warn of a collapsed best trial, and `hpo
report` runs without torch."""

from __future__ import annotations

import html
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from sklearn.metrics import accuracy_score, confusion_matrix

from hpo import stored
from hpo.errors import HpoError
from hpo.report import open_existing_study, summarize, trials_table, write_study_report
from hpo.report.baseline import collapse_warnings
from hpo.report.best_tables import best_model_tables
from hpo.report.tables import TEST_COLUMN, batch_size_tables, loss_table, marginal, objective_pivot
from hpo.spec import StudySpec
from hpo.stored import BestMetrics
from testing.data import UCC_LABELS
from testing.specs import tiny_architecture
from testing.studies import TINY_GRID, TINY_NAME, TinyStudy, made_trial
from trainers.evaluate import bootstrap_intervals, multi_class_scores


@dataclass(frozen=True)
class StudyCopy:
    study: optuna.Study
    spec: StudySpec
    shared: TinyStudy
    root: Path  # holds the copy's optuna.db


@pytest.fixture(scope="module")
def study_copy(tmp_path_factory, tiny_study: TinyStudy) -> StudyCopy:
    """The shared tiny study, copied, plus one FAILED and one PRUNED trial."""
    root = tmp_path_factory.mktemp("report")
    study, spec = open_existing_study(TINY_NAME, tiny_study.copy_to(root))
    epoch = dict(stored.epoch_history(study.trials[0].user_attrs)[0])
    epoch["tuned_macro_f1"] = epoch["monitor_value"] = 0.01
    study.add_trial(
        made_trial(
            {"batch_size": 16, "learning_rate": 1e-3},
            TINY_GRID,
            state=TrialState.PRUNED,
            user_attrs={"epoch_001": epoch, "best_epoch": 1},
            intermediate={1: 0.01},
        )
    )
    study.add_trial(
        made_trial(
            {"batch_size": 32, "learning_rate": 3e-3},
            TINY_GRID,
            state=TrialState.FAIL,
            user_attrs={"fail_reason": "NonFiniteLossError: loss became nan\ntraceback..."},
        )
    )
    return StudyCopy(study, spec, tiny_study, root)


def test_trials_table_holds_each_trials_own_numbers(study_copy):
    study, spec = study_copy.study, study_copy.spec
    table = trials_table(study, spec).set_index("trial")
    assert len(table) == 6
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        row = table.loc[t.number]
        epochs = stored.epoch_history(t.user_attrs)
        best = next(m for m in epochs if m["epoch"] == t.user_attrs["best_epoch"])
        assert row["objective"] == t.value == best["tuned_macro_f1"]
        assert row["train_loss_first"] == epochs[0]["train_loss"]
        assert row["train_loss_last"] == epochs[-1]["train_loss"]
        assert row["train_loss_change"] == pytest.approx(
            (epochs[-1]["train_loss"] - epochs[0]["train_loss"]) / epochs[0]["train_loss"]
        )
        assert (row["val_micro_f1"], row["val_macro_f1"], row["val_subset_accuracy"]) == (
            best["micro_f1"],
            best["macro_f1"],
            best["subset_accuracy"],
        )
        assert row["epochs_run"] == 2 and row["state"] == "COMPLETE"


def test_batch_size_tables_pivot_and_best(study_copy):
    study, spec = study_copy.study, study_copy.spec
    trials = trials_table(study, spec)
    complete = {
        (t.params["batch_size"], t.params["learning_rate"]): t.value
        for t in study.get_trials(states=(TrialState.COMPLETE,))
    }
    tables = batch_size_tables(trials, spec.task)
    assert sorted(tables) == [16, 32]
    assert list(tables[16]["learning_rate"]) == [
        1e-3,
        1e-3,
        3e-3,
    ]  # the complete and the pruned trial at 1e-3
    assert set(tables[32]["state"]) == {"COMPLETE", "FAIL"}
    done = tables[16][tables[16]["state"] == "COMPLETE"]
    assert list(done["objective"]) == [complete[(16, lr)] for lr in done["learning_rate"]]
    pivot = objective_pivot(trials, "batch_size", "learning_rate", maximize=True)
    for (bs, lr), value in complete.items():
        assert pivot.loc[bs, lr] == value  # the pruned (0.01) and failed trials do not enter
    by_bs = marginal(trials, "batch_size", maximize=True)
    for bs in (16, 32):
        values = [v for (b, _), v in complete.items() if b == bs]
        assert by_bs.loc[bs, "mean_objective"] == pytest.approx(sum(values) / 2)
        assert by_bs.loc[bs, "best_objective"] == max(values)
    summary = summarize(study, spec)
    best = summary.table("best_configuration").set_index("setting")["value"]
    assert best["trial"] == study.best_trial.number and best["tuned_macro_f1"] == study.best_value
    assert summary.pivot_axes == ("batch_size", "learning_rate")


def test_failed_and_pruned_trials_are_reported(study_copy, tmp_path):
    study, spec = study_copy.study, study_copy.spec
    summary = summarize(study, spec)
    trials = summary.table("trials").set_index("state")
    assert trials.loc["PRUNED", "objective"] == 0.01 and trials.loc["PRUNED", "best_epoch"] == 1
    assert trials.loc["FAIL", "fail_reason"] == "NonFiniteLossError: loss became nan"
    assert math.isnan(trials.loc["FAIL", "objective"])
    epochs = summary.table("epochs")
    assert len(epochs) == 4 * 2 + 1  # two epochs per complete trial, one for the pruned one
    page = write_study_report(study, summary, tmp_path)
    markdown = (tmp_path / "report.md").read_text()
    assert "| FAIL |" in markdown and "| PRUNED |" in markdown
    assert "Intermediate values" in page.read_text() and "plotly" in page.read_text()
    assert pd.read_csv(tmp_path / "trials.csv").shape[0] == 6
    assert (tmp_path / "pivot_batch_size_x_learning_rate.csv").is_file()


def test_test_scores_have_their_own_column(tiny_study, tmp_path):
    study, spec = open_existing_study(TINY_NAME, tiny_study.copy_to(tmp_path))
    number = study.best_trial.number
    study.set_user_attr(stored.test_scores_key(number), {"tuned_macro_f1": 0.123})
    table = trials_table(study, spec).set_index("trial")
    assert table.loc[number, TEST_COLUMN] == 0.123
    assert table[TEST_COLUMN].isna().sum() == 3  # the other complete trials


def test_report_command_writes_files_without_importing_torch(study_copy, tmp_path):
    root, data_dir = study_copy.root, study_copy.shared.data_dir
    code = (
        "import sys; from hpo.cli import main; "
        f"code = main(['report', {TINY_NAME!r}, '--storage', {f'sqlite:///{root}/optuna.db'!r}, '--data-dir', {str(data_dir)!r}]); "
        "assert 'torch' not in sys.modules, 'hpo report imported torch'; sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "runs" / TINY_NAME / "report"
    assert {"report.md", "report.html", "trials.csv", "batch_size_16.csv", "baseline_val.csv"} <= {
        p.name for p in out.iterdir()
    }
    assert "All-majority baseline" in (out / "report.md").read_text()


def test_a_missing_study_is_named_with_the_ones_there(study_copy):
    with pytest.raises(HpoError, match=f"no study 'nope' .* studies there: {TINY_NAME}"):
        open_existing_study("nope", f"sqlite:///{study_copy.root}/optuna.db")


# ---- studies built from created trials: other spaces, loss types, too few trials -----------


def _spec(**space) -> StudySpec:
    return StudySpec.model_validate({
        "name": "made", "task": "multi_label",
        "data": {"dir": "ucc", "text_column": "comment", "label_columns": UCC_LABELS},
        "model": {"from_config": tiny_architecture()}, "search_space": space,
    })  # fmt: skip


def _made_trial(value, params, space, loss_ap=0.5, state=TrialState.COMPLETE, predicted=1):
    per_label = {n: {"ap": loss_ap, "predicted_positive": predicted} for n in UCC_LABELS}
    epoch = {"epoch": 1, "train_loss": 1.0, "tuned_macro_f1": value, "per_label": per_label}
    return made_trial(params, space, state=state, value=value if state == TrialState.COMPLETE else None,
                      user_attrs={"epoch_001": epoch, "best_epoch": 1})  # fmt: skip


def test_other_spaces_pivot_on_the_two_most_important_settings():
    space = {"dropout": {"type": "float", "low": 0.0, "high": 0.5}, "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2},
             "weight_decay": {"type": "float", "low": 0.0, "high": 0.1}}  # fmt: skip
    spec = _spec(**space)
    ranges = {k: (v["low"], v["high"]) for k, v in space.items()}
    study = optuna.create_study(direction="maximize")
    for i in range(12):
        dropout = 0.04 * i
        study.add_trial(
            _made_trial(
                1 - dropout + 0.001 * (i % 3),
                {"dropout": dropout, "warmup_ratio": 0.01 * (i % 3), "weight_decay": 0.05},
                ranges,
            )
        )
    summary = summarize(study, spec)
    assert summary.pivot_axes[0] == "dropout"  # the objective follows dropout
    assert summary.table("param_importances")["parameter"].iloc[0] == "dropout"
    pivot = summary.table(f"pivot_{summary.pivot_axes[0]}_x_{summary.pivot_axes[1]}")
    assert len(pivot.index) <= 4  # 12 distinct dropouts are binned
    assert pivot.max().max() == study.best_value


def test_loss_types_are_compared_when_trials_differ_in_loss():
    spec = _spec(loss={"type": "categorical", "choices": ["bce", "focal"]})
    space = {"loss": ["bce", "focal"]}
    study = optuna.create_study(direction="maximize")
    for value, loss, ap in (
        (0.3, "bce", 0.1),
        (0.5, "bce", 0.2),
        (0.4, "focal", 0.7),
        (0.2, "focal", 0.8),
    ):
        study.add_trial(_made_trial(value, {"loss": loss}, space, ap))
    study.add_trial(_made_trial(0.9, {"loss": "focal"}, space, 0.9, state=TrialState.PRUNED))
    table = loss_table(trials_table(study, spec), study, spec).set_index("loss")
    assert table.loc["bce", "best_objective"] == 0.5 and table.loc[
        "bce", "median_objective"
    ] == pytest.approx(0.4)
    assert table.loc["focal", "trials"] == 3 and table.loc["focal", "complete"] == 2
    assert table.loc["focal", "best_objective"] == 0.4 and table.loc["focal", "ap_hostile"] == 0.7


@pytest.mark.parametrize("states", [(), (TrialState.FAIL,), (TrialState.COMPLETE,)])
def test_sparse_studies_still_report(states, tmp_path):
    spec = _spec(dropout={"type": "float", "low": 0.0, "high": 0.5})
    space = {"dropout": (0.0, 0.5)}
    study = optuna.create_study(direction="maximize")
    for state in states:
        if state == TrialState.FAIL:
            study.add_trial(
                made_trial(
                    {"dropout": 0.1}, space, state=state, user_attrs={"fail_reason": "boom"}
                )
            )
        else:
            study.add_trial(_made_trial(0.4, {"dropout": 0.1}, space))
    summary = summarize(study, spec)
    assert summary.pivot_axes is None and summary.notes
    write_study_report(study, summary, tmp_path)
    assert (tmp_path / "report.html").stat().st_size > 0


def test_multi_class_best_model_tables_hold_the_test_scores():
    rng = np.random.default_rng(0)
    names = ["neg", "neu", "pos"]
    y = rng.integers(0, 3, 90)
    probs = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y] * 0.4
    test = {
        "default": multi_class_scores(y, probs, tuple(names)),
        "intervals": bootstrap_intervals("multi_class", y, probs, None, 50),
    }
    objective = {
        "metric": "macro_f1",
        "trial_value": 0.5,
        "retrained_val_value": 0.5,
        "baseline_val_value": 0.1,
    }
    metrics = BestMetrics.model_validate(stored.json_safe({
        "study": "made", "trial": 3, "params": {}, "epochs": 2, "task": "multi_class", "labels": names, "thresholds": None,
        "objective": objective, "val": {}, "baseline_val": {}, "test": test, "n_test": 90, "texts_per_s": 400.0,
        "seconds_per_1000_texts": 2.5, "model_size_mb": 1.0,
    }))  # fmt: skip
    tables = {t.key: t.frame for t in best_model_tables(metrics)}
    headline = tables["test_metrics"].set_index("metric")
    assert headline.loc["accuracy", "test"] == accuracy_score(y, probs.argmax(axis=1))
    assert (
        headline.loc["accuracy", "95% CI"].startswith("[")
        and headline.loc["macro_ap", "95% CI"] == ""
    )
    np.testing.assert_array_equal(
        tables["test_confusion"].to_numpy(), confusion_matrix(y, probs.argmax(axis=1))
    )
    assert tables["model_facts"].set_index("fact").loc["seconds_per_1000_texts", "value"] == 2.5


def test_conditional_settings_stay_with_the_settings_and_blank_where_unused():
    spec = _spec(loss={"type": "categorical", "choices": ["bce", "focal"]},
                 focal_gamma={"type": "float", "low": 0.5, "high": 3.0, "when": {"loss": "focal"}},
                 learning_rate={"type": "float", "low": 1e-5, "high": 1e-3})  # fmt: skip
    space = {"loss": ["bce", "focal"], "focal_gamma": (0.5, 3.0), "learning_rate": (1e-5, 1e-3)}
    study = optuna.create_study(direction="maximize")
    study.add_trial(_made_trial(0.3, {"loss": "bce", "learning_rate": 1e-4}, space))
    study.add_trial(
        _made_trial(0.4, {"loss": "focal", "focal_gamma": 2.5, "learning_rate": 2e-4}, space)
    )
    study.add_trial(_made_trial(0.5, {"loss": "bce", "learning_rate": 3e-4}, space))
    table = trials_table(study, spec)
    assert list(table.columns[:5]) == ["trial", "state", "loss", "focal_gamma", "learning_rate"]
    assert table["focal_gamma"].isna().tolist() == [True, False, True]
    summary = summarize(study, spec)
    assert "focal_gamma" not in (summary.pivot_axes or ())


def test_collapse_warnings_name_unpredicted_labels_and_an_unbeaten_baseline():
    assert collapse_warnings({"a": 0, "b": 5, "c": 0}, 0.40, 0.10, True, "at 0.5 on test") == [
        "never predicted at 0.5 on test: a, c"
    ]
    assert collapse_warnings({"a": 1}, 0.1005, 0.10, True, "w") == [
        "objective 0.1005 is no better than the all-majority baseline's 0.1000"
    ]
    assert collapse_warnings({"a": 1}, 0.102, 0.10, True, "w") == []
    assert collapse_warnings({"a": 1}, 0.6995, 0.70, False, "w") == [
        "objective 0.6995 is no better than the all-majority baseline's 0.7000"
    ]
    assert collapse_warnings({"a": 1}, 0.60, 0.70, False, "w") == []
    assert (
        collapse_warnings({"a": 1}, math.nan, 0.10, True, "w")
        == collapse_warnings({"a": 1}, 0.05, None, True, "w")
        == []
    )


def test_study_report_warns_when_the_best_trial_collapsed_to_the_majority(tmp_path):
    spec, space = (
        _spec(dropout={"type": "float", "low": 0.0, "high": 0.5}),
        {"dropout": (0.0, 0.5)},
    )
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        _made_trial(0.30, {"dropout": 0.1}, space, predicted=0)
    )  # the best: predicts nothing at 0.5
    study.add_trial(_made_trial(0.20, {"dropout": 0.2}, space))
    summary = summarize(study, spec, baseline={"tuned_macro_f1": 0.30, "macro_f1": 0.0})
    assert summary.warnings == [
        f"best trial 0: never predicted at 0.5 on validation: {', '.join(UCC_LABELS)}",
        "best trial 0: objective 0.3000 is no better than the all-majority baseline's 0.3000",
    ]
    write_study_report(study, summary, tmp_path)
    markdown, page = (tmp_path / "report.md").read_text(), (tmp_path / "report.html").read_text()
    for warning in summary.warnings:
        assert (
            f"> **Warning:** {warning}" in markdown
            and f'<p class="warn">Warning: {html.escape(warning)}</p>' in page
        )
    assert (
        pd.read_csv(tmp_path / "baseline_val.csv")
        .set_index("metric")
        .loc["tuned_macro_f1", "all-majority baseline"]
        == 0.30
    )

    healthy = optuna.create_study(direction="maximize")
    healthy.add_trial(_made_trial(0.30, {"dropout": 0.1}, space))
    assert summarize(healthy, spec, baseline={"tuned_macro_f1": 0.10}).warnings == []


def test_binned_levels_read_as_the_values_range_and_sort_by_value():
    """A log-scaled learning rate over a decade and more: edges at 3 significant digits from
    the smallest value itself (never below it, never negative), levels in ascending order."""
    from hpo.report.tables import axis_levels

    values = pd.Series([5.5e-5 * 1.3**i for i in range(12)])  # 5.5e-05 .. 9.86e-04
    levels = axis_levels(values)
    order = list(levels.cat.categories)
    assert order[0].startswith("[5.5e-05, ") and order[-1].endswith(", 0.000986]")
    lows = [float(label[1:].split(",")[0]) for label in order]
    assert lows == sorted(lows) and len(order) == 4
