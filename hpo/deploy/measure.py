"""A variant's figures: thresholds re-tuned on validation for this variant (as `hpo retrain`
tunes them), headline metrics with 95 % bootstrap intervals on validation and, once, on test,
and its CPU speed on the validation texts (selection between variants reads validation only)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpo.deploy.layout import VariantFigures, size_on_disk_mb
from hpo.deploy.runtime import THRESHOLDS_FILE, Predictor

HEADLINE = {
    "multi_label": ("macro_roc_auc", "tuned_macro_f1"),
    "multi_class": ("accuracy", "macro_f1"),
}
_INTERVAL_KEYS = {
    "macro_roc_auc": "macro_roc_auc",
    "tuned_macro_f1": "tuned.macro_f1",
    "accuracy": "accuracy",
    "macro_f1": "macro_f1",
}


@dataclass(frozen=True)
class Splits:
    """Texts and labels of validation and test (labels: 0/1 (n, L) or class ids (n,))."""

    task: str
    names: tuple[str, ...]
    val_texts: list[str]
    val_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray

    @classmethod
    def load(cls, config) -> Splits:
        from trainers.data import load_split

        val = load_split(config.data.val_path, config.data, config.task)
        test = load_split(config.data.test_path, config.data, config.task)
        cast = (lambda y: y.astype(np.int64)) if config.task == "multi_label" else (lambda y: y)
        return cls(
            config.task,
            config.data.label_names,
            val.texts,
            cast(val.labels),
            test.texts,
            cast(test.labels),
        )


def tune_thresholds(
    predictor: Predictor, splits: Splits, directory: Path | None
) -> np.ndarray | None:
    """Multi-label: each label's best expected-F1 threshold (calibrated, as `hpo retrain`
    chooses it) on this variant's validation probabilities, written to the variant's
    thresholds.json (None: keep the fp32 model's own)."""
    if splits.task != "multi_label":
        return None
    from trainers.thresholds import calibrated_f1_thresholds

    val_probs = predictor.probabilities(splits.val_texts)
    thresholds = calibrated_f1_thresholds(splits.val_labels, val_probs)
    if directory is not None:
        table = {n: float(t) for n, t in zip(splits.names, thresholds, strict=True)}
        (Path(directory) / THRESHOLDS_FILE).write_text(json.dumps(table, indent=2))
    predictor.thresholds = thresholds
    return thresholds


def measure_variant(
    name: str,
    predictor: Predictor,
    directory: Path,
    parameters: int,
    splits: Splits,
    single_texts: int,
    resamples: int,
) -> VariantFigures:
    from trainers.speed import measure_speed

    val_probs = predictor.probabilities(splits.val_texts)
    val, val_ci = headline(
        splits.task, splits.val_labels, val_probs, predictor.thresholds, splits.names, resamples
    )
    test_probs = predictor.probabilities(
        splits.test_texts
    )  # the one read of test for this variant
    test, test_ci = headline(
        splits.task, splits.test_labels, test_probs, predictor.thresholds, splits.names, resamples
    )
    speed = measure_speed(predictor.probabilities, splits.val_texts, n_single=single_texts)
    thresholds = (
        None
        if predictor.thresholds is None
        else {n: float(t) for n, t in zip(splits.names, predictor.thresholds, strict=True)}
    )
    return VariantFigures(
        variant=name, size_mb=size_on_disk_mb(directory), parameters=parameters, **vars(speed), val=val, test=test,
        val_intervals=val_ci, test_intervals=test_ci, thresholds=thresholds,
    )  # fmt: skip


def headline(
    task: str,
    y: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | None,
    names: tuple[str, ...],
    resamples: int,
):
    """The task's two headline metrics and their 95 % bootstrap intervals (seeded, 1,000
    resamples by default). Multi-label F1 is at the given thresholds (tuned on validation)."""
    from trainers.evaluate import bootstrap_intervals, multi_class_scores, multi_label_scores

    if task == "multi_label":
        scores = multi_label_scores(y, probs, names, thresholds if thresholds is not None else 0.5)
        values = {"macro_roc_auc": scores["macro_roc_auc"], "tuned_macro_f1": scores["macro_f1"]}
    else:
        scores = multi_class_scores(y, probs, names)
        values = {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}
    intervals = bootstrap_intervals(task, y, probs, thresholds, resamples) if resamples else {}  # type: ignore[arg-type]
    return values, {k: intervals.get(_INTERVAL_KEYS[k], [None, None]) for k in values}
