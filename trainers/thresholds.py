"""Per-label decision thresholds, chosen on validation data only.

At 0.5 a rare label is almost never predicted; its best-F1 threshold is read off its
precision-recall curve instead. With 15-42 positives per rare label (UCC val), the single
best point of that curve moves a lot when one comment changes. Two ways to steady it:

- `best_f1_thresholds` bags it: the median of the best-F1 thresholds of bootstrap resamples.
  On UCC val, tuning on one random half and scoring the other, bagging raised macro F1 from
  0.232 to 0.240 (mean of 40 splits, one MiniLM model's predictions). The study's
  `tuned_macro_f1` objective uses it.
- `calibrated_f1_thresholds` maximises the expected F1 under a Platt calibration of the scores,
  so the labels enter through two fitted parameters per label. On the same kind of half-split
  test (30 splits each) over `ucc-best`'s saved models it scored +0.007 to +0.019 macro F1
  above bagging on every model and on their means; `hpo retrain` and `hpo compress` choose the
  delivered thresholds with it.
"""

from __future__ import annotations

import numpy as np

N_RESAMPLES = 50


def best_f1_thresholds(
    y_true: np.ndarray,
    probs: np.ndarray,
    default: float = 0.5,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """One threshold per column; `default` where it has no positive.

    n_resamples 0: the threshold maximising the column's F1 on these rows. Otherwise the median
    of that threshold over `n_resamples` bootstrap resamples (seeded, so repeatable).
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    n = len(y_true)
    if n == 0:
        return np.full(y_true.shape[1], default)
    if n_resamples == 0:
        draws = np.ones((1, n))
    else:
        rows = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        draws = _times_drawn(rows, n)
    thresholds = []
    for j in range(y_true.shape[1]):
        picks = _best_thresholds(y_true[:, j], probs[:, j], draws)
        picks = picks[~np.isnan(picks)]  # a resample may miss every positive
        thresholds.append(float(np.median(picks)) if len(picks) else default)
    return np.array(thresholds)


def _times_drawn(rows: np.ndarray, n: int) -> np.ndarray:
    """(resamples, n): how often each row is drawn in each resample; a bootstrap resample is
    these weights on the original rows."""
    offsets = n * np.arange(len(rows))[:, None]
    counts = np.bincount((rows + offsets).ravel(), minlength=len(rows) * n)
    return counts.reshape(len(rows), n).astype(np.float64)


def _best_thresholds(y: np.ndarray, p: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Per row of `draws`, the best-F1 threshold of the sample it weights, NaN where it holds no
    positive: precision_recall_curve's curve, bit for bit, for every resample in one pass.

    The candidates are the distinct scores (descending); at each, TP and the predicted count are
    running sums of the weights. A score no row of the resample holds is no candidate of it. Of
    equal F1s the lowest threshold wins, as argmax over precision_recall_curve's order gives.
    """
    order, ends = _descending(p)
    scores = p[order]
    weights = draws[:, order]
    tp = np.cumsum(weights * y[order], axis=1)[:, ends]
    predicted = np.cumsum(weights, axis=1)[:, ends]
    held = np.diff(predicted, axis=1, prepend=0) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / predicted
        recall = tp / tp[:, -1:]
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    f1 = np.where(held, f1, -np.inf)[:, ::-1]  # ascending thresholds
    best = scores[ends][::-1][np.argmax(f1, axis=1)].astype(np.float64)
    return np.where(tp[:, -1] > 0, best, np.nan)


def _descending(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows in descending order of score (stable), and the position in that order of the
    last row of each distinct score: the candidate thresholds, highest first."""
    order = np.argsort(p, kind="mergesort")[::-1]
    ends = np.r_[np.flatnonzero(np.diff(p[order])), len(p) - 1]
    return order, ends


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return (probs >= thresholds).astype(np.int64)


def calibrated_f1_thresholds(
    y_true: np.ndarray, probs: np.ndarray, default: float = 0.5
) -> np.ndarray:
    """One threshold per column: the one maximising the column's expected F1 on these rows when
    each row counts as positive with its Platt-calibrated probability; `default` where the
    column has no positive.

    The labels enter only through the calibration's two parameters (a logistic regression of
    the label on the logit of the score), not through which rows happen to sit above a
    candidate, so the choice moves far less with a single comment than the empirical F1 curve's
    best point does.
    """
    from sklearn.linear_model import LogisticRegression

    y_true, probs = np.asarray(y_true), np.asarray(probs, dtype=np.float64)
    thresholds = []
    for j in range(y_true.shape[1]):
        y, p = y_true[:, j], probs[:, j]
        if y.min() == y.max():
            thresholds.append(default)
            continue
        clipped = np.clip(p, 1e-7, 1 - 1e-7)
        z = np.log(clipped / (1 - clipped))[:, None]
        q = LogisticRegression().fit(z, y).predict_proba(z)[:, 1]
        order, ends = _descending(p)
        scores = p[order]
        expected_tp = np.cumsum(q[order])[ends]
        expected_f1 = 2 * expected_tp / (ends + 1 + q.sum())
        thresholds.append(float(scores[ends][np.argmax(expected_f1)]))
    return np.array(thresholds)
