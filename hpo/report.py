"""Study summaries as pandas tables; no rendering (that is hpo.report_render).

Every number comes from the trials in storage, their parameters and user attributes
("epoch_001", ... one metrics dict per epoch; "best_epoch"; "fail_reason"), so the report of any
study, finished or still running, can be rebuilt at any time. Nothing here imports torch.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.report_features import features_by_setting, features_table
from hpo.spec import StudySpec, load_spec
from trainers.config import Hyperparams

EPOCH_ATTR = re.compile(r"epoch_(\d+)")
TEST_SCORES_ATTR = "test_scores_{:04d}"  # a study user attr: finished trials are read-only
TEST_COLUMN = "test (after study, not used for selection)"
MAX_LEVELS = 8  # a numeric axis with more distinct values is binned for the pivots
VAL_COLUMNS = {
    "multi_label": ("micro_f1", "macro_f1", "tuned_macro_f1", "subset_accuracy", "macro_roc_auc"),
    "multi_class": ("accuracy", "macro_f1", "weighted_f1", "macro_roc_auc"),
}


@dataclass
class StudySummary:
    """All tables of a study report, in reading order; `notes` explain what a table leaves out."""

    name: str
    spec: StudySpec
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pivot_axes: tuple[str, str] | None = None


# ---- reading a study ------------------------------------------------------------------------


def open_existing_study(name: str, storage_url: str) -> tuple[optuna.Study, StudySpec]:
    """Load a study and the spec it ran with (saved in the study, else studies/<name>.yaml)."""
    from storage import open_storage, redact

    storage = open_storage(storage_url, heartbeat_interval=None)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise HpoError(f"no study {name!r} in {redact(storage_url)}; studies there: {', '.join(names) or 'none'}") from None
    return study, study_spec(study)


def study_spec(study: optuna.Study) -> StudySpec:
    text = study.user_attrs.get("spec_yaml")
    if text is None:
        return load_spec(study.study_name)
    return StudySpec.model_validate(yaml.safe_load(text))


def epoch_metrics(trial: FrozenTrial) -> list[dict]:
    """The trial's per-epoch metrics dicts, in epoch order."""
    keyed = [(int(m.group(1)), v) for k, v in trial.user_attrs.items() if (m := EPOCH_ATTR.fullmatch(k))]
    return [v for _, v in sorted(keyed, key=lambda kv: kv[0])]


def best_epoch_metrics(trial: FrozenTrial, metric: str, maximize: bool) -> dict:
    """The metrics of the epoch the trial's value comes from ("best_epoch"), else its best epoch."""
    epochs = epoch_metrics(trial)
    wanted = trial.user_attrs.get("best_epoch")
    for m in epochs:
        if m.get("epoch") == wanted:
            return m
    scored = [m for m in epochs if _finite(m.get(metric))]
    if not scored:
        return epochs[-1] if epochs else {}
    return (max if maximize else min)(scored, key=lambda m: m[metric])


def hyperparam(trial: FrozenTrial, spec: StudySpec, name: str) -> Any:
    """A setting's value in this trial: searched, fixed by the spec, or the trainer's default."""
    if name in trial.params:
        return trial.params[name]
    if name in spec.training:
        return spec.training[name]
    return Hyperparams.model_fields[name].default


def loss_type(trial: FrozenTrial, spec: StudySpec) -> str:
    return hyperparam(trial, spec, "loss") or ("bce" if spec.task == "multi_label" else "cross_entropy")


def test_scores(study: optuna.Study) -> dict[int, dict]:
    """Per-trial test scores written by `hpo score-trials` after the study."""
    prefix = TEST_SCORES_ATTR.split("{")[0]
    return {int(k[len(prefix):]): v for k, v in study.user_attrs.items() if k.startswith(prefix)}


# ---- tables ---------------------------------------------------------------------------------


def trials_table(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """One row per trial: its settings, state, objective, training-loss trend and validation
    figures at the epoch its value comes from."""
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    metric = spec.objective.metric
    scores = test_scores(study)
    rows = []
    for t in study.get_trials(deepcopy=False):
        epochs = epoch_metrics(t)
        best = best_epoch_metrics(t, metric, maximize)
        first = epochs[0].get("train_loss") if epochs else None
        last = epochs[-1].get("train_loss") if epochs else None
        row = {"trial": t.number, "state": t.state.name, **t.params}
        row.update({k: hyperparam(t, spec, k) for k in ("batch_size", "learning_rate") if k not in row})
        row.update(
            loss=loss_type(t, spec),
            # A pruned trial's Optuna value is its last epoch's; the best epoch's is comparable.
            objective=t.value if t.state == TrialState.COMPLETE else _num(best.get(metric)),
            best_epoch=t.user_attrs.get("best_epoch"),
            epochs_run=len(epochs),
            train_loss_first=_num(first),
            train_loss_last=_num(last),
            train_loss_change=(last - first) / first if _finite(first) and _finite(last) and first else math.nan,
            **{f"val_{k}": _num(best.get(k)) for k in VAL_COLUMNS[spec.task]},
            duration_s=t.duration.total_seconds() if t.duration else math.nan,
            fail_reason=_first_line(t.user_attrs.get("fail_reason")),
        )
        if scores:
            row[TEST_COLUMN] = _num(scores.get(t.number, {}).get(metric))
        rows.append(row)
    # The spec's order, not first appearance: a conditional setting first seen in trial 5 would
    # otherwise land behind the figures.
    columns = ["trial", "state", *spec.search_space]
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame = frame[[c for c in columns if c in frame] + [c for c in frame if c not in columns]]
    frame["best_epoch"] = frame["best_epoch"].astype("Int64")  # missing for failed trials
    return frame


def batch_size_tables(trials: pd.DataFrame, task: str) -> dict[Any, pd.DataFrame]:
    """Per batch size, one row per learning rate: loss trend, validation F1/accuracy, state."""
    accuracy = "val_subset_accuracy" if task == "multi_label" else "val_accuracy"
    f1 = ["val_micro_f1", "val_macro_f1"] if task == "multi_label" else ["val_macro_f1", "val_weighted_f1"]
    columns = ["learning_rate", "trial", "train_loss_first", "train_loss_last", "train_loss_change", *f1, accuracy, "state"]
    return {bs: group.sort_values(["learning_rate", "trial"])[columns].reset_index(drop=True) for bs, group in trials.groupby("batch_size")}


def complete(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["state"] == TrialState.COMPLETE.name]


def axis_levels(values: pd.Series) -> pd.Series:
    """The values as pivot levels: as they are, or binned (log-spaced for a positive range
    spanning a decade or more) when a numeric setting has more than MAX_LEVELS values."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric or values.nunique() <= MAX_LEVELS:
        return values
    low, high = values.min(), values.max()
    edges = np.geomspace(low, high, 5) if low > 0 and high / low >= 10 else np.linspace(low, high, 5)
    return pd.cut(values, edges, include_lowest=True).astype(str)


def objective_pivot(trials: pd.DataFrame, rows: str, columns: str, maximize: bool) -> pd.DataFrame:
    """Best objective of the complete trials at each (rows, columns) combination."""
    done = complete(trials)
    frame = pd.DataFrame({rows: axis_levels(done[rows]), columns: axis_levels(done[columns]), "objective": done["objective"]})
    return frame.pivot_table(index=rows, columns=columns, values="objective", aggfunc="max" if maximize else "min")


def marginal(trials: pd.DataFrame, param: str, maximize: bool) -> pd.DataFrame:
    """Trials, mean and best objective of the complete trials at each value of `param`."""
    done = complete(trials)
    grouped = done["objective"].groupby(axis_levels(done[param]))
    return pd.DataFrame({"trials": grouped.size(), "mean_objective": grouped.mean(), "best_objective": grouped.max() if maximize else grouped.min()})


def best_configuration(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """The best complete trial: number, objective, epoch its value comes from, every setting."""
    best = study.best_trial
    rows = [("trial", best.number), (spec.objective.metric, best.value), ("best_epoch", best.user_attrs.get("best_epoch"))]
    rows += [(k, v) for k, v in best.params.items()]
    rows += [(k, v) for k, v in spec.training.items() if k not in best.params]
    return pd.DataFrame(rows, columns=["setting", "value"], dtype=object)


def epoch_table(study: optuna.Study, metric: str) -> pd.DataFrame:
    """Every trial's epochs: training loss (all batches and the first tenth), its batch-to-batch
    coefficient of variation, validation loss and the objective metric."""
    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            "epoch": m.get("epoch"),
            "train_loss": _num(m.get("train_loss")),
            "train_loss_first_batches": _num(m.get("train_loss_first_batches")),
            "batch_loss_cv": _num(m.get("batch_loss_cv")),
            "val_loss": _num(m.get("val_loss")),
            metric: _num(m.get(metric)),
            "epoch_time_s": _num(m.get("epoch_time_s")),
        }
        for t in study.get_trials(deepcopy=False)
        for m in epoch_metrics(t)
    ]
    return pd.DataFrame(rows)


def param_importances(study: optuna.Study) -> pd.Series:
    """Optuna's importance of each searched setting; empty when the complete trials are too few
    or show no variation to explain."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(done) < 2 or not any(t.params for t in done):
        return pd.Series(dtype=float, name="importance")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError, ZeroDivisionError):
        return pd.Series(dtype=float, name="importance")
    return pd.Series(importances, name="importance", dtype=float)


def pivot_axes(spec: StudySpec, importances: pd.Series) -> tuple[str, str] | None:
    """batch_size × learning_rate when both are searched, else the two most important settings
    (the first two searched ones while importances cannot be computed). A conditional setting
    is left out: most trials have no value for it."""
    searched = [name for name, p in spec.search_space.items() if not p.when]
    if {"batch_size", "learning_rate"} <= set(searched):
        return "batch_size", "learning_rate"
    ranked = [p for p in importances.index if p in searched] or searched
    return (ranked[0], ranked[1]) if len(ranked) >= 2 else None


def loss_table(trials: pd.DataFrame, study: optuna.Study, spec: StudySpec) -> pd.DataFrame | None:
    """Per loss type (when the trials differ in it): trials, best and median objective of the
    complete ones, and the best trial's per-label average precision on validation."""
    if trials["loss"].nunique() < 2:
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows = []
    for loss, group in trials.groupby("loss"):
        done = complete(group)
        row: dict[str, Any] = {"loss": loss, "trials": len(group), "complete": len(done)}
        if len(done):
            best = done.loc[done["objective"].idxmax() if maximize else done["objective"].idxmin()]
            row.update(best_objective=best["objective"], median_objective=done["objective"].median(), best_trial=int(best["trial"]))
            per_label = best_epoch_metrics(by_number[int(best["trial"])], spec.objective.metric, maximize).get("per_label", {})
            row.update({f"ap_{name}": _num(v.get("ap")) for name, v in per_label.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# ---- baselines and collapse -----------------------------------------------------------------


def majority_baseline(spec: StudySpec, data_dir: str | Path) -> dict:
    """Validation metrics of a model that always outputs the training prior: at 0.5 it predicts
    the majority (all-zero but for labels above 50 %), with tuned thresholds its best constant."""
    from trainers.data import load_split
    from trainers.metrics import compute_metrics

    data = spec.data_config(data_dir)
    train = load_split(data.train_path, data, spec.task)
    val = load_split(data.val_path, data, spec.task)
    n = len(data.label_names)
    prior = train.labels.mean(axis=0) if spec.task == "multi_label" else np.bincount(train.labels, minlength=n) / len(train.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant scores: ROC-AUC is 0.5, precision undefined
        return compute_metrics(spec.task, val.labels, np.tile(prior, (len(val.labels), 1)), data.label_names)


def collapse_warnings(predicted: dict[str, int], value: float | None, baseline: float | None, maximize: bool, where: str) -> list[str]:
    """Signs of a collapsed model: a label never predicted (`where`: "at 0.5 on test"), or an
    objective no better than the all-majority baseline's."""
    never = [name for name, n in predicted.items() if n == 0]
    out = [f"never predicted {where}: {', '.join(never)}"] if never else []
    if _finite(value) and _finite(baseline) and (value <= baseline + 1e-3 if maximize else value >= baseline - 1e-3):
        out.append(f"objective {value:.4f} is no better than the all-majority baseline's {baseline:.4f}")
    return out


# ---- the retrained model (runs/<study>/best/metrics.json) --------------------------------------


def best_model_tables(metrics: dict) -> dict[str, pd.DataFrame]:
    """Test tables of the retrained best model, from its metrics.json."""
    if metrics["task"] == "multi_label":
        return _multi_label_best_tables(metrics)
    return _multi_class_best_tables(metrics)


ML_HEADLINE = ("micro_precision", "micro_recall", "micro_f1", "macro_precision", "macro_recall", "macro_f1", "subset_accuracy")
MC_HEADLINE = ("accuracy", "macro_f1", "weighted_f1", "macro_precision", "macro_recall", "weighted_precision", "weighted_recall", "macro_roc_auc", "macro_ap")


def _multi_label_best_tables(m: dict) -> dict[str, pd.DataFrame]:
    test, ci = m["test"], m["test"]["intervals"]
    rows = []
    for key in ML_HEADLINE:
        rows.append({"metric": key, "at 0.5": test["default"][key], "95% CI at 0.5": _ci(ci.get(f"default.{key}")),
                     "tuned thresholds": test["tuned"][key], "95% CI tuned": _ci(ci.get(f"tuned.{key}"))})
    for key in ("micro_roc_auc", "macro_roc_auc"):  # threshold-free
        rows.append({"metric": key, "at 0.5": test["default"][key], "95% CI at 0.5": _ci(ci.get(key)),
                     "tuned thresholds": test["tuned"][key], "95% CI tuned": _ci(ci.get(key))})
    per_label = []
    for name in m["labels"]:
        d, t = test["default"]["per_label"][name], test["tuned"]["per_label"][name]
        per_label.append({
            "label": name, "threshold": m["thresholds"][name], "support": d["support"], "average_precision": d["ap"],
            "roc_auc": d["roc_auc"], "f1 at 0.5": d["f1"], "f1 tuned": t["f1"], "predicted at 0.5": d["predicted_positive"],
            "predicted tuned": t["predicted_positive"],
        })  # fmt: skip
    confusion = [
        {"label": name, "thresholds": tag, "tn": c[0][0], "fp": c[0][1], "fn": c[1][0], "tp": c[1][1]}
        for tag, key in (("0.5", "default"), ("tuned", "tuned"))
        for name in m["labels"]
        for c in [test[key]["per_label"][name]["confusion"]]
    ]
    return {"test_before_after": pd.DataFrame(rows), "test_per_label": pd.DataFrame(per_label),
            "test_confusion": pd.DataFrame(confusion), "model_facts": _model_facts(m)}  # fmt: skip


def _multi_class_best_tables(m: dict) -> dict[str, pd.DataFrame]:
    test, ci = m["test"]["default"], m["test"]["intervals"]
    headline = pd.DataFrame([{"metric": k, "test": test[k], "95% CI": _ci(ci.get(k))} for k in MC_HEADLINE])
    per_class = pd.DataFrame(
        [{"class": n, **{k: v[k] for k in ("precision", "recall", "f1", "roc_auc", "support", "predicted_positive")}}
         for n, v in test["per_label"].items()]  # fmt: skip
    )
    confusion = pd.DataFrame(test["confusion"], index=pd.Index(m["labels"], name="true"), columns=m["labels"])
    return {"test_metrics": headline, "test_per_class": per_class, "test_confusion": confusion, "model_facts": _model_facts(m)}


def _model_facts(m: dict) -> pd.DataFrame:
    keys = ("trial", "epochs", "n_test", "model_size_mb", "texts_per_s", "seconds_per_1000_texts")
    return pd.DataFrame([(k, m[k]) for k in keys if k in m], columns=["fact", "value"], dtype=object)


def _ci(interval: list[float] | None) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval and all(_finite(x) for x in interval) else ""


# ---- the whole summary ----------------------------------------------------------------------


def summarize(study: optuna.Study, spec: StudySpec, baseline: dict | None = None, best_metrics: dict | None = None) -> StudySummary:
    """Every table of the study report (`baseline`: majority_baseline; `best_metrics`: the
    retrained model's metrics.json)."""
    summary = StudySummary(name=study.study_name, spec=spec)
    trials = trials_table(study, spec)
    if trials.empty:
        summary.notes.append("the study has no trials yet")
        return summary
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    tables = summary.tables
    tables["trials"] = trials
    for bs, table in batch_size_tables(trials, spec.task).items():
        tables[f"batch_size_{bs}"] = table
    importances = param_importances(study)
    if not importances.empty:
        tables["param_importances"] = importances.rename_axis("parameter").reset_index()
    else:
        summary.notes.append("parameter importances need at least two complete trials that differ in their settings")
    has_complete = not complete(trials).empty
    summary.pivot_axes = pivot_axes(spec, importances)
    if summary.pivot_axes and has_complete:
        rows, columns = summary.pivot_axes
        tables[f"pivot_{rows}_x_{columns}"] = objective_pivot(trials, rows, columns, maximize)
        for p in summary.pivot_axes:
            tables[f"objective_by_{p}"] = marginal(trials, p, maximize).reset_index()
    elif not summary.pivot_axes:
        summary.notes.append("no pivot: the study searches fewer than two settings")
    if has_complete:
        tables["best_configuration"] = best_configuration(study, spec)
        summary.warnings += _study_collapse(study, spec, baseline, maximize)
    else:
        summary.notes.append("no complete trial yet: no pivot and no best configuration")
    tables["epochs"] = epoch_table(study, spec.objective.metric)
    losses = loss_table(trials, study, spec)
    if losses is not None:
        tables["by_loss"] = losses
    features = features_table(trials, maximize)
    if features is not None:
        tables["features"] = features
        if (by_pooling := features_by_setting(trials, "pooling", maximize)) is not None:
            tables["features_x_pooling"] = by_pooling
    if baseline is not None:
        tables["baseline_val"] = pd.DataFrame([(k, v) for k, v in baseline.items() if not isinstance(v, dict)], columns=["metric", "all-majority baseline"])
    if best_metrics is not None:
        tables.update({f"best_{k}": v for k, v in best_model_tables(best_metrics).items()})
        summary.warnings += best_metrics.get("collapse", [])
    return summary


def _study_collapse(study: optuna.Study, spec: StudySpec, baseline: dict | None, maximize: bool) -> list[str]:
    best = study.best_trial
    per_label = best_epoch_metrics(best, spec.objective.metric, maximize).get("per_label", {})
    predicted = {n: v["predicted_positive"] for n, v in per_label.items() if "predicted_positive" in v}
    base = baseline.get(spec.objective.metric) if baseline else None
    return [f"best trial {best.number}: {w}" for w in collapse_warnings(predicted, best.value, base, maximize, "at 0.5 on validation")]


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> float:
    return float(x) if _finite(x) else math.nan


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""
