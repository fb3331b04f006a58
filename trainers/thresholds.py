"""Per-label decision thresholds, chosen on validation data only.

At 0.5 a rare label is almost never predicted; its best-F1 threshold is read off its
precision-recall curve instead.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve


def best_f1_thresholds(y_true: np.ndarray, probs: np.ndarray, default: float = 0.5) -> np.ndarray:
    """One threshold per column maximising that column's F1; `default` where it has no positive."""
    return np.array([_best_threshold(y_true[:, j], probs[:, j], default) for j in range(y_true.shape[1])])


def _best_threshold(y: np.ndarray, p: np.ndarray, default: float) -> float:
    if y.sum() == 0:
        return default
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    # The last PR point has no threshold; it is recall 0 and never the best.
    return float(thresholds[int(np.argmax(f1[:-1]))])


def apply_thresholds(probs: np.ndarray, thresholds: np.ndarray | float) -> np.ndarray:
    return (probs >= thresholds).astype(np.int64)
