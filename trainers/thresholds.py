"""Per-label decision thresholds, chosen on validation data only.

At 0.5 a rare label is almost never predicted; its best-F1 threshold is read off its
precision-recall curve instead. With 15-42 positives per rare label (UCC val), the single
best point of that curve moves a lot when one comment changes, so by default the threshold is
bagged: the median of the best-F1 thresholds of bootstrap resamples of the split. On UCC val,
tuning on one random half and scoring the other, bagging raised macro F1 from 0.232 to 0.240
(mean of 40 splits, one MiniLM model's predictions).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve

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
    if n_resamples == 0:
        return np.array(
            [_best_threshold(y_true[:, j], probs[:, j], default) for j in range(y_true.shape[1])]
        )
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(y_true), size=(n_resamples, len(y_true)))
    return np.array(
        [
            _bagged_threshold(y_true[:, j], probs[:, j], rows, default)
            for j in range(y_true.shape[1])
        ]
    )


def _bagged_threshold(y: np.ndarray, p: np.ndarray, rows: np.ndarray, default: float) -> float:
    picks = [_best_threshold(y[r], p[r], np.nan) for r in rows]
    picks = [t for t in picks if not np.isnan(t)]  # a resample may miss every positive
    return float(np.median(picks)) if picks else default


def _best_threshold(y: np.ndarray, p: np.ndarray, default: float) -> float:
    if y.sum() == 0:
        return default
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    # The last PR point has no threshold; it is recall 0 and never the best.
    return float(thresholds[int(np.argmax(f1[:-1]))])


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return (probs >= thresholds).astype(np.int64)
