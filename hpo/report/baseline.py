"""What a model that learnt nothing scores, and the signs that a model collapsed to it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from hpo.report.read import finite
from hpo.spec import StudySpec


def majority_baseline(spec: StudySpec, data_dir: str | Path) -> dict:
    """Validation metrics of a model that always outputs the training prior: at 0.5 it predicts
    the majority (all-zero but for labels above 50 %), with tuned thresholds its best constant."""
    from trainers.data import load_split
    from trainers.metrics import compute_metrics

    data = spec.data_config(data_dir)
    train = load_split(data.train_path, data, spec.task)
    val = load_split(data.val_path, data, spec.task)
    n = len(data.label_names)
    prior = (
        train.labels.mean(axis=0)
        if spec.task == "multi_label"
        else np.bincount(train.labels, minlength=n) / len(train.labels)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant scores: ROC-AUC is 0.5, precision undefined
        return compute_metrics(
            spec.task, val.labels, np.tile(prior, (len(val.labels), 1)), data.label_names
        )


def collapse_warnings(
    predicted: dict[str, int],
    value: float | None,
    baseline: float | None,
    maximize: bool,
    where: str,
) -> list[str]:
    """Signs of a collapsed model: a label never predicted (`where`: "at 0.5 on test"), or an
    objective no better than the all-majority baseline's."""
    never = [name for name, n in predicted.items() if n == 0]
    out = [f"never predicted {where}: {', '.join(never)}"] if never else []
    if (
        finite(value)
        and finite(baseline)
        and (value <= baseline + 1e-3 if maximize else value >= baseline - 1e-3)
    ):
        out.append(
            f"objective {value:.4f} is no better than the all-majority baseline's {baseline:.4f}"
        )
    return out
