"""Label-aware over-sampling: draw comments that carry rare labels more often.

A label's rarity is `p_min / p_l`, its train prevalence relative to the rarest label's, i.e.
its inverse prevalence normalised so the rarest label scores 1. A row's weight is
`1 + strength · (largest rarity among its positive labels)`, so `strength` reads directly:
rows with the rarest label are drawn `1 + strength` times as often as rows with no positive
label, a label ten times as common gets a tenth of that boost, and common labels stay near 1.
A row is as rare as its rarest label, since that label is the one short of examples.
"""

from __future__ import annotations

import numpy as np


def oversampling_weights(train_labels: np.ndarray, strength: float) -> np.ndarray:
    """Per-row sampling weights (n,), all 1 when strength is 0.

    Accepts multi-label 0/1 rows (n, L) or multi-class integer ids (n,), where every row has
    exactly one positive label: its class.
    """
    labels = np.asarray(train_labels)
    if labels.ndim == 1:
        return 1.0 + strength * _class_rarity(labels)[labels]
    if labels.ndim == 2:
        positive = labels > 0
        return 1.0 + strength * np.where(positive, _label_rarity(positive), 0.0).max(
            axis=1, initial=0.0
        )
    raise ValueError(
        f"train labels must be (n,) class ids or (n, L) 0/1, got shape {labels.shape}"
    )


def weighted_epoch_indices(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch of `len(weights)` row indices drawn with replacement, proportional to weight."""
    weights = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(weights), size=len(weights), replace=True, p=weights / weights.sum())


def _label_rarity(positive: np.ndarray) -> np.ndarray:
    """p_min / p_l per label; 0 for labels never positive (no row to weight)."""
    counts = positive.sum(axis=0)
    present = counts > 0
    if not present.any():
        return np.zeros(positive.shape[1])
    return np.where(present, counts[present].min() / np.maximum(counts, 1), 0.0)


def _class_rarity(class_ids: np.ndarray) -> np.ndarray:
    counts = np.bincount(class_ids)
    return np.where(counts > 0, counts[counts > 0].min() / np.maximum(counts, 1), 0.0)
