"""The study report's tables, as pandas frames with titles; no rendering (hpo.report.render).

Pivots and means use complete trials only; a pruned trial's figures are its best epoch's.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from hpo import stored
from hpo.objectives import PARETO_RULE, chosen_trial, is_multi_objective, primary_value
from hpo.report.baseline import collapse_warnings
from hpo.report.best_tables import best_model_tables
from hpo.report.features import features_by_setting, features_table
from hpo.report.profile_tables import profile_tables
from hpo.report.read import best_epoch_metrics, finite, hyperparam, loss_type, num
from hpo.report.summary import StudySummary
from hpo.spec import StudySpec
from hpo.stored import BestMetrics

TEST_COLUMN = "test (after study, not used for selection)"
MAX_LEVELS = 8  # a numeric axis with more distinct values is binned for the pivots
VAL_COLUMNS = {
    "multi_label": ("micro_f1", "macro_f1", "tuned_macro_f1", "subset_accuracy", "macro_roc_auc"),
    "multi_class": ("accuracy", "macro_f1", "weighted_f1", "macro_roc_auc"),
}


def trials_table(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """One row per trial: its settings, state, objective, training-loss trend and validation
    figures at the epoch its value comes from."""
    maximize = spec.objective.resolved_direction == "maximize"
    metric = spec.objective.metric
    pareto = {t.number for t in study.best_trials} if is_multi_objective(study) else set()
    scores = stored.test_scores_of(study.user_attrs)
    rows = []
    for t in study.get_trials(deepcopy=False):
        epochs = stored.epoch_history(t.user_attrs)
        best = best_epoch_metrics(t, metric, maximize)
        first = epochs[0].get("train_loss") if epochs else None
        last = epochs[-1].get("train_loss") if epochs else None
        row = {"trial": t.number, "state": t.state.name, **t.params}
        row.update(
            {k: hyperparam(t, spec, k) for k in ("batch_size", "learning_rate") if k not in row}
        )
        row.update(
            loss=loss_type(t, spec),
            # A pruned trial's Optuna value is its last epoch's; the best epoch's is comparable.
            objective=primary_value(t)
            if t.state == TrialState.COMPLETE
            else num(best.get(metric)),
            best_epoch=t.user_attrs.get(stored.BEST_EPOCH),
            epochs_run=len(epochs),
            train_loss_first=num(first),
            train_loss_last=num(last),
            train_loss_change=(last - first) / first
            if finite(first) and finite(last) and first
            else math.nan,
            **{f"val_{k}": num(best.get(k)) for k in VAL_COLUMNS[spec.task]},
            duration_s=t.duration.total_seconds() if t.duration else math.nan,
            fail_reason=_first_line(t.user_attrs.get(stored.FAIL_REASON)),
        )
        if pareto:
            values = t.values or [None] * len(spec.all_objectives)
            row.update(
                {
                    o.metric: num(v)
                    for o, v in zip(spec.all_objectives[1:], values[1:], strict=True)
                }
            )
            row["pareto"] = t.number in pareto
        if scores:
            row[TEST_COLUMN] = num(scores.get(t.number, {}).get(metric))
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
    """Per batch size, one row per learning rate: the objective, loss trend, validation
    F1/accuracy, state (the objective first: a study may optimise none of the other columns)."""
    accuracy = "val_subset_accuracy" if task == "multi_label" else "val_accuracy"
    f1 = (
        ["val_micro_f1", "val_macro_f1"]
        if task == "multi_label"
        else ["val_macro_f1", "val_weighted_f1"]
    )
    columns = [
        "learning_rate",
        "trial",
        "objective",
        "train_loss_first",
        "train_loss_last",
        "train_loss_change",
        *f1,
        accuracy,
        "state",
    ]
    return {
        bs: group.sort_values(["learning_rate", "trial"])[columns].reset_index(drop=True)
        for bs, group in trials.groupby("batch_size")
    }


def complete(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["state"] == TrialState.COMPLETE.name]


def axis_levels(values: pd.Series) -> pd.Series:
    """The values as pivot levels: as they are, or binned (log-spaced for a positive range
    spanning a decade or more) when a numeric setting has more than MAX_LEVELS values."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if not numeric or values.nunique() <= MAX_LEVELS:
        return values
    low, high = values.min(), values.max()
    edges = (
        np.geomspace(low, high, 5) if low > 0 and high / low >= 10 else np.linspace(low, high, 5)
    )
    # Own labels: pandas' would print the float noise of the edges and, with include_lowest,
    # move the first edge down by 0.001 (a learning rate range "(-0.0009445, 6.48e-05]").
    text = [f"{edge:.3g}" for edge in edges]
    labels = [f"[{text[0]}, {text[1]}]"] + [
        f"({a}, {b}]" for a, b in zip(text[1:-1], text[2:], strict=True)
    ]
    return pd.cut(values, edges, labels=labels, include_lowest=True)  # ordered: sorts by value


def objective_pivot(trials: pd.DataFrame, rows: str, columns: str, maximize: bool) -> pd.DataFrame:
    """Best objective of the complete trials at each (rows, columns) combination."""
    done = complete(trials)
    frame = pd.DataFrame(
        {
            rows: axis_levels(done[rows]),
            columns: axis_levels(done[columns]),
            "objective": done["objective"],
        }
    )
    return frame.pivot_table(
        index=rows,
        columns=columns,
        values="objective",
        aggfunc="max" if maximize else "min",
        observed=True,
    )


def marginal(trials: pd.DataFrame, param: str, maximize: bool) -> pd.DataFrame:
    """Trials, mean and best objective of the complete trials at each value of `param`."""
    done = complete(trials)
    grouped = done["objective"].groupby(axis_levels(done[param]), observed=True)
    return pd.DataFrame(
        {
            "trials": grouped.size(),
            "mean_objective": grouped.mean(),
            "best_objective": grouped.max() if maximize else grouped.min(),
        }
    )


def best_configuration(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """The best complete trial: number, objective, epoch its value comes from, every setting."""
    best = chosen_trial(study)
    rows = [("trial", best.number), *zip([o.metric for o in spec.all_objectives], best.values, strict=True),
            ("best_epoch", best.user_attrs.get(stored.BEST_EPOCH))]  # fmt: skip
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
            "train_loss": num(m.get("train_loss")),
            "train_loss_first_batches": num(m.get("train_loss_first_batches")),
            "batch_loss_cv": num(m.get("batch_loss_cv")),
            "val_loss": num(m.get("val_loss")),
            metric: num(m.get(metric)),
            "epoch_time_s": num(m.get("epoch_time_s")),
        }
        for t in study.get_trials(deepcopy=False)
        for m in stored.epoch_history(t.user_attrs)
    ]
    return pd.DataFrame(rows)


def device_table(study: optuna.Study) -> pd.DataFrame | None:
    """Which trials shared a GPU: per trial its host, device, measured memory and the trials that
    ran on the same device at the same time. None when no trial ran on a GPU."""
    on_gpu = [
        t
        for t in study.get_trials(deepcopy=False)
        if stored.GPU in t.user_attrs and t.datetime_start
    ]
    if not on_gpu:
        return None
    now = pd.Timestamp.now().to_pydatetime()

    def place(t) -> tuple[str, str]:
        return str(t.user_attrs.get(stored.WORKER, "")).rsplit(":", 1)[0], str(
            t.user_attrs[stored.GPU]
        )

    def overlaps(a, b) -> bool:
        return a.datetime_start < (b.datetime_complete or now) and b.datetime_start < (
            a.datetime_complete or now
        )

    rows = [
        {
            "trial": t.number,
            "state": t.state.name,
            "host": place(t)[0],
            "gpu": place(t)[1],
            "peak_device_memory_mb": num(t.user_attrs.get(stored.PEAK_MEMORY_MB)),
            "ran_alone": bool(t.user_attrs.get(stored.RUN_ALONE)),
            "shared_with": " ".join(
                str(o.number)
                for o in on_gpu
                if o is not t and place(o) == place(t) and overlaps(t, o)
            ),
        }
        for t in on_gpu
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
            importances = optuna.importance.get_param_importances(
                study, target=primary_value if is_multi_objective(study) else None
            )
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
    maximize = spec.objective.resolved_direction == "maximize"
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    rows = []
    for loss, group in trials.groupby("loss"):
        done = complete(group)
        row: dict[str, Any] = {"loss": loss, "trials": len(group), "complete": len(done)}
        if len(done):
            best = done.loc[done["objective"].idxmax() if maximize else done["objective"].idxmin()]
            row.update(
                best_objective=best["objective"],
                median_objective=done["objective"].median(),
                best_trial=int(best["trial"]),
            )
            per_label = best_epoch_metrics(
                by_number[int(best["trial"])], spec.objective.metric, maximize
            ).get("per_label", {})
            row.update({f"ap_{name}": num(v.get("ap")) for name, v in per_label.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def pareto_table(study: optuna.Study, spec: StudySpec) -> pd.DataFrame:
    """The Pareto-optimal trials (study.best_trials): their objectives, settings, and the model
    as deployed (its size and parameters beside the objectives)."""
    rows = []
    for t in sorted(
        study.best_trials,
        key=lambda t: t.values[0],
        reverse=spec.objective.resolved_direction == "maximize",
    ):
        deployed = t.user_attrs.get(stored.DEPLOYED, {})
        row = {
            "trial": t.number,
            **{o.metric: v for o, v in zip(spec.all_objectives, t.values, strict=True)},
            **t.params,
        }
        row.update(
            {
                k: num(deployed.get(k))
                for k in ("texts_per_second", "model_size_mb", "parameters")
                if k not in row
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


TITLES = {
    "pareto": "Pareto front: trials no other trial beats on every objective (the model as deployed: int8 when the trial says so)",
    "trials": "All trials (validation figures at the epoch each value comes from)",
    "param_importances": "Parameter importances (Optuna, complete trials)",
    "best_configuration": "Best configuration",
    "epochs": "Training loss per epoch, with the batch-loss coefficient of variation",
    "by_loss": "By loss type: complete trials' objective and the best trial's validation average precision",
    "baseline_val": "All-majority baseline on validation",
    "features": "With and without the hand-made features: objective of complete trials (last row: the differences; its std is the standard error of the difference of means)",
    "devices": "Trials per GPU: measured memory and the trials that ran beside each",
    "features_x_pooling": "Best objective of complete trials: features × pooling (without features, CLS pooling is the plain transformers head)",
}


def summarize(
    study: optuna.Study,
    spec: StudySpec,
    baseline: dict | None = None,
    best_metrics: BestMetrics | None = None,
) -> StudySummary:
    """Every table of the study report (`baseline`: hpo.report.baseline.majority_baseline;
    `best_metrics`: the retrained model's metrics.json)."""
    summary = StudySummary(name=study.study_name, spec=spec)
    trials = trials_table(study, spec)
    if trials.empty:
        summary.notes.append("the study has no trials yet")
        return _with_profile(summary, study)
    maximize = spec.objective.resolved_direction == "maximize"
    add = summary.add
    add("trials", TITLES["trials"], trials)
    if is_multi_objective(study) and not complete(trials).empty:
        add("pareto", TITLES["pareto"], pareto_table(study, spec))
        summary.notes.append(f"multi-objective study: pivots, marginals and importances use the first objective ({spec.objective.metric}); "
                             f"the best configuration is {PARETO_RULE}")  # fmt: skip
    for bs, table in batch_size_tables(trials, spec.task).items():
        add(f"batch_size_{bs}", f"Batch size {bs}: one row per learning rate", table)
    importances = param_importances(study)
    if not importances.empty:
        add(
            "param_importances",
            TITLES["param_importances"],
            importances.rename_axis("parameter").reset_index(),
        )
    else:
        summary.notes.append(
            "parameter importances need at least two complete trials that differ in their settings"
        )
    has_complete = not complete(trials).empty
    summary.pivot_axes = pivot_axes(spec, importances)
    if summary.pivot_axes and has_complete:
        rows, columns = summary.pivot_axes
        add(f"pivot_{rows}_x_{columns}", f"Best objective of complete trials: {rows} × {columns}",
            objective_pivot(trials, rows, columns, maximize), pivot=True)  # fmt: skip
        for p in summary.pivot_axes:
            add(
                f"objective_by_{p}",
                f"Objective of complete trials by {p}",
                marginal(trials, p, maximize).reset_index(),
            )
    elif not summary.pivot_axes:
        summary.notes.append("no pivot: the study searches fewer than two settings")
    if has_complete:
        add("best_configuration", TITLES["best_configuration"], best_configuration(study, spec))
        summary.warnings += _study_collapse(study, spec, baseline, maximize)
    else:
        summary.notes.append("no complete trial yet: no pivot and no best configuration")
    add("epochs", TITLES["epochs"], epoch_table(study, spec.objective.metric))
    if (devices := device_table(study)) is not None:
        add("devices", TITLES["devices"], devices)
    if (selection := selection_table(study)) is not None:
        add(
            "selection",
            "Selection over seeds (hpo select): mean and standard error per candidate; the first is retrained",
            selection,
        )
    losses = loss_table(trials, study, spec)
    if losses is not None:
        add("by_loss", TITLES["by_loss"], losses)
    features = features_table(trials, maximize)
    if features is not None:
        add("features", TITLES["features"], features)
        if (by_pooling := features_by_setting(trials, "pooling", maximize)) is not None:
            add("features_x_pooling", TITLES["features_x_pooling"], by_pooling)
    if baseline is not None:
        frame = pd.DataFrame(
            [(k, v) for k, v in baseline.items() if not isinstance(v, dict)],
            columns=["metric", "all-majority baseline"],
        )
        add("baseline_val", TITLES["baseline_val"], frame)
    if best_metrics is not None:
        for table in best_model_tables(best_metrics):
            add(f"best_{table.key}", f"Retrained best model. {table.title}", table.frame)
        summary.warnings += best_metrics.collapse
    return _with_profile(summary, study)


def _with_profile(summary: StudySummary, study: optuna.Study) -> StudySummary:
    """The data profile stored before the first trial, when there is one."""
    profile = stored.read_profile(study.user_attrs)
    if profile is not None:
        summary.tables += profile_tables(profile, baseline=summary.table("baseline_val") is None)
    else:
        summary.notes.append(
            "no data profile in the study (it is stored by `hpo study` and `hpo workers` before the first trial)"
        )
    return summary


def _study_collapse(
    study: optuna.Study, spec: StudySpec, baseline: dict | None, maximize: bool
) -> list[str]:
    best = chosen_trial(study)
    per_label = best_epoch_metrics(best, spec.objective.metric, maximize).get("per_label", {})
    predicted = {
        n: v["predicted_positive"] for n, v in per_label.items() if "predicted_positive" in v
    }
    base = baseline.get(spec.objective.metric) if baseline else None
    return [
        f"best trial {best.number}: {w}"
        for w in collapse_warnings(
            predicted, primary_value(best), base, maximize, "at 0.5 on validation"
        )
    ]


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0] if lines else ""


def selection_table(study: optuna.Study) -> pd.DataFrame | None:
    """`hpo select`'s candidates, best mean first; None before it ran."""
    found = stored.selections_of(study.user_attrs)
    if not found:
        return None
    rows = [{"trial": n, "search value": c.search_value, "mean": c.mean, "standard error": c.standard_error,
             "seeds": len(c.scores), "stopped early": c.pruned} for n, c in found.items()]  # fmt: skip
    return pd.DataFrame(rows).sort_values(
        "mean", ascending=study.direction != optuna.study.StudyDirection.MAXIMIZE
    )
