"""Held-out evaluation of a trained model: probabilities for raw texts, test metrics at 0.5 and
at thresholds chosen on validation, and bootstrap intervals for the headline figures.

Nothing here chooses a threshold: thresholds come in from validation, so the test split is
only ever read to report.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from scipy import sparse
from sklearn.metrics import (
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from trainers.batching import TokenizedSplit, sorted_batches
from trainers.checkpoint import BestModel
from trainers.config import Task
from trainers.metrics import multi_class_metrics, multi_label_metrics
from trainers.model import probabilities
from trainers.progress import chunks, progress
from trainers.thresholds import apply_thresholds


@torch.no_grad()
def predict_probabilities(
    best: BestModel, texts: Sequence[str], batch_size: int = 128
) -> tuple[np.ndarray, float]:
    """Probabilities (n, labels) in the texts' order, mixed with the model's n-gram blend when it
    has one, and the seconds it took (tokenising, features and blend included: that is what a
    caller waits for)."""
    model, tokenizer, labels = best.model, best.tokenizer, best.labels
    device = next(model.parameters()).device
    start = time.perf_counter()
    encoded = tokenizer(list(texts), truncation=True, max_length=labels.max_length)["input_ids"]
    features = best.extractor.transform(texts) if best.extractor is not None else None
    split = TokenizedSplit(
        ids=[np.asarray(x, dtype=np.int64) for x in encoded],
        labels=np.zeros(len(encoded)),
        texts=list(texts),
        features=features,
    )
    out = np.empty((len(encoded), len(labels.names)), dtype=np.float32)
    model.eval()
    for rows, inputs in split.batches(
        sorted_batches(split.lengths, batch_size), tokenizer.pad_token_id, device
    ):
        out[rows] = probabilities(model(**inputs).logits.float(), labels.task).cpu().numpy()
    if best.blend is not None:
        out = best.blend.mix(out, texts)
    return out, time.perf_counter() - start


def multi_label_scores(
    y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | float
) -> dict:
    """Scores at fixed `thresholds`: micro/macro precision, recall and F1, subset accuracy,
    ROC-AUC, and per label its scores, average precision and confusion matrix [[tn, fp], [fn, tp]]."""
    y = y.astype(np.int64)
    base = multi_label_metrics(y, probs, names, thresholds)
    base.pop("tuned_macro_f1")  # tuned on the split it scores: never a test figure
    pred = apply_thresholds(probs, thresholds)
    for average in ("micro", "macro"):
        p, r, _, _ = precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        base[f"{average}_precision"], base[f"{average}_recall"] = float(p), float(r)
    for name, cm in zip(names, multilabel_confusion_matrix(y, pred), strict=True):
        base["per_label"][name]["confusion"] = cm.tolist()
    return base


def multi_class_scores(y: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> dict:
    """Accuracy, macro and weighted F1, macro precision/recall, per-class and macro ROC-AUC,
    the confusion matrix (rows: true class) and how often each class is predicted."""
    out = multi_class_metrics(y, probs, names)
    pred = probs.argmax(axis=1)
    out["confusion"] = confusion_matrix(y, pred, labels=range(len(names))).tolist()
    counts = np.bincount(pred, minlength=len(names))
    for name, count in zip(names, counts, strict=True):
        out["per_label"][name]["predicted_positive"] = int(count)
    return out


def bootstrap_intervals(
    task: Task,
    y: np.ndarray,
    probs: np.ndarray,
    thresholds: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, list[float]]:
    """Percentile intervals of the headline figures over resamples of the texts (with
    replacement, seeded; the same resamples for every figure). A resample in which a figure is
    undefined (no positive text for any label) does not count for that figure."""
    counts = resample_counts(len(y), n_resamples, seed)
    tail = (1 - level) / 2 * 100
    steps = chunks(n_resamples, 100)
    parts = [
        resampled_scores(task, y, probs, thresholds, counts[s])
        for s in progress(steps, "bootstrap", len(steps), "x100 resamples")
    ]
    out = {}
    for name in parts[0] if parts else ():
        values = np.concatenate([part[name] for part in parts])
        values = values[np.isfinite(values)]
        out[name] = (
            [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]
            if len(values)
            else [np.nan, np.nan]
        )
    return out


def resample_counts(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(resamples, n): how often each text is drawn in each bootstrap resample."""
    return (
        np.random.default_rng(seed)
        .multinomial(n, np.full(n, 1 / n), size=n_resamples)
        .astype(np.float64)
    )


def resampled_scores(
    task: Task, y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray | None, counts: np.ndarray
) -> dict[str, np.ndarray]:
    """Each headline figure on every resample at once. A resample is a weighting of the texts
    by `counts`, so every figure is a matrix product instead of a scikit-learn call per
    resample (1000 resamples of 4,000 texts take a second, not minutes); the figures equal
    scikit-learn's on the resampled texts (tests check)."""
    if task == "multi_class":
        n_classes = probs.shape[1]
        truth, pred = (
            np.eye(n_classes, dtype=bool)[y],
            np.eye(n_classes, dtype=bool)[probs.argmax(axis=1)],
        )
        tp, fp, fn = _weighted_confusion(counts, truth, pred)
        f1 = _f1(tp, fp, fn)
        support = tp + fn
        return {
            "accuracy": counts @ (truth & pred).any(axis=1) / counts.sum(axis=1),
            "macro_f1": f1.mean(axis=1),
            "weighted_f1": (f1 * support).sum(axis=1) / support.sum(axis=1),
            "macro_roc_auc": _macro_auc(counts, truth, probs),
        }
    truth = y.astype(bool)
    out = {"macro_roc_auc": _macro_auc(counts, truth, probs)}
    for tag, t in (("default", 0.5), ("tuned", thresholds)):
        if t is None:
            continue
        pred = probs >= t
        tp, fp, fn = _weighted_confusion(counts, truth, pred)
        out[f"{tag}.micro_f1"] = _f1(tp.sum(axis=1), fp.sum(axis=1), fn.sum(axis=1))
        out[f"{tag}.macro_f1"] = _f1(tp, fp, fn).mean(axis=1)
        out[f"{tag}.subset_accuracy"] = counts @ (pred == truth).all(axis=1) / counts.sum(axis=1)
    return out


def _weighted_confusion(
    counts: np.ndarray, truth: np.ndarray, pred: np.ndarray
) -> tuple[np.ndarray, ...]:
    """True positives, false positives, false negatives per resample and label: (B, labels)."""
    return counts @ (truth & pred), counts @ (~truth & pred), counts @ (truth & ~pred)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """F1 = 2tp / (2tp + fp + fn); 0 where a label is neither present nor predicted
    (scikit-learn's zero_division=0)."""
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator), where=denominator > 0)


def _macro_auc(counts: np.ndarray, truth: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean ROC-AUC over the labels with both classes in the resample (NaN if none has)."""
    aucs = np.stack(
        [_weighted_auc(counts, truth[:, j], probs[:, j]) for j in range(truth.shape[1])], axis=1
    )
    defined = np.isfinite(aucs)
    total = np.where(defined, aucs, 0).sum(axis=1)
    n_defined = defined.sum(axis=1)
    return np.divide(total, n_defined, out=np.full(len(counts), np.nan), where=n_defined > 0)


def _weighted_auc(counts: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC per resample: the weighted share of (positive, negative) pairs ranked in the
    right order, ties counting half (the Mann-Whitney statistic, as scikit-learn computes it)."""
    levels, group = np.unique(scores, return_inverse=True)
    onehot = sparse.csr_matrix(
        (np.ones(len(scores)), (np.arange(len(scores)), group)), shape=(len(scores), len(levels))
    )
    pos = np.asarray((onehot.T @ (counts * positive).T).T)  # (B, score levels), ascending score
    neg = np.asarray((onehot.T @ (counts * ~positive).T).T)
    below = np.cumsum(neg, axis=1) - neg
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    right = (pos * (below + 0.5 * neg)).sum(axis=1)
    return np.divide(right, pairs, out=np.full(len(counts), np.nan), where=pairs > 0)
