"""Validation and test metrics, all from scikit-learn.

A label with a single class in the split has no ROC-AUC: it is NaN with a warning, never a
silent 0 or 0.5 that would move a macro average.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from trainers.config import Task
from trainers.thresholds import apply_thresholds, best_f1_thresholds


def compute_metrics(
    task: Task, y_true: np.ndarray, probs: np.ndarray, label_names: tuple[str, ...]
) -> dict:
    if task == "multi_label":
        return multi_label_metrics(y_true, probs, label_names)
    return multi_class_metrics(y_true, probs, label_names)


def multi_label_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    label_names: tuple[str, ...],
    thresholds: np.ndarray | float = 0.5,
) -> dict:
    """Metrics at `thresholds`, plus "tuned_macro_f1": macro F1 with each label's threshold
    chosen on this same split (the study's objective; optimistic, so retraining re-checks on test)."""
    y = y_true.astype(np.int64)
    pred = apply_thresholds(probs, thresholds)
    tuned = apply_thresholds(probs, best_f1_thresholds(y, probs))
    aucs = [_roc_auc(y[:, j], probs[:, j], name) for j, name in enumerate(label_names)]
    aps = [_average_precision(y[:, j], probs[:, j]) for j in range(len(label_names))]
    p, r, f, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    out = {
        "micro_f1": f1_score(y, pred, average="micro", zero_division=0),
        "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
        "tuned_macro_f1": f1_score(y, tuned, average="macro", zero_division=0),
        "subset_accuracy": accuracy_score(y, pred),
        "micro_roc_auc": _roc_auc(y.ravel(), probs.ravel(), "micro"),
        "macro_roc_auc": _nanmean(aucs),
        "macro_ap": _nanmean(aps),
        "per_label": {
            name: {
                "precision": p[j],
                "recall": r[j],
                "f1": f[j],
                "roc_auc": aucs[j],
                "ap": aps[j],
                "support": int(support[j]),
                "predicted_positive": int(pred[:, j].sum()),
            }
            for j, name in enumerate(label_names)
        },
    }
    return _floats(out)


def multi_class_metrics(
    y_true: np.ndarray, probs: np.ndarray, label_names: tuple[str, ...]
) -> dict:
    pred = probs.argmax(axis=1)
    onehot = np.eye(len(label_names), dtype=np.int64)[y_true]
    aucs = [_roc_auc(onehot[:, j], probs[:, j], name) for j, name in enumerate(label_names)]
    p, r, f, support = precision_recall_fscore_support(
        y_true, pred, labels=range(len(label_names)), zero_division=0
    )
    out = {
        "accuracy": accuracy_score(y_true, pred),
        "macro_f1": f1_score(
            y_true, pred, average="macro", labels=range(len(label_names)), zero_division=0
        ),
        "weighted_f1": f1_score(
            y_true, pred, average="weighted", labels=range(len(label_names)), zero_division=0
        ),
        "macro_precision": float(np.mean(p)),
        "macro_recall": float(np.mean(r)),
        "weighted_precision": float(np.average(p, weights=support)) if support.sum() else 0.0,
        "weighted_recall": float(np.average(r, weights=support)) if support.sum() else 0.0,
        "macro_roc_auc": _nanmean(aucs),
        "macro_ap": _nanmean(
            [_average_precision(onehot[:, j], probs[:, j]) for j in range(len(label_names))]
        ),
        "per_label": {
            name: {
                "precision": p[j],
                "recall": r[j],
                "f1": f[j],
                "roc_auc": aucs[j],
                "support": int(support[j]),
            }
            for j, name in enumerate(label_names)
        },
    }
    return _floats(out)


def _roc_auc(y: np.ndarray, p: np.ndarray, name: str) -> float:
    if len(np.unique(y)) < 2:
        warnings.warn(
            f"ROC-AUC of {name!r} is undefined: only one class in this split", stacklevel=3
        )
        return math.nan
    return float(roc_auc_score(y, p))


def _average_precision(y: np.ndarray, p: np.ndarray) -> float:
    return float(average_precision_score(y, p)) if y.sum() > 0 else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _floats(d: dict) -> dict:
    """numpy scalars → Python floats so the dict goes to JSON and Optuna user attributes."""
    return {
        k: _floats(v) if isinstance(v, dict) else (v if isinstance(v, int) else float(v))
        for k, v in d.items()
    }
