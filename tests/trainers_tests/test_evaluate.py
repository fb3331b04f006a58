"""Test-split scoring: the vectorised bootstrap equals scikit-learn on the resampled texts, and
the thresholded scores are scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from trainers.evaluate import (
    bootstrap_intervals,
    multi_class_scores,
    multi_label_scores,
    resample_counts,
    resampled_scores,
)

RNG = np.random.default_rng(7)
N, L = 400, 5
Y = (RNG.random((N, L)) < [0.02, 0.1, 0.3, 0.5, 0.05]).astype(np.int64)
Y[:, 0] = 0
Y[:3, 0] = 1  # a rare label: some resamples have none of it (ROC-AUC undefined there)
PROBS = np.round(np.clip(0.6 * Y + RNG.random((N, L)) * 0.7, 0, 1), 2)  # rounded: many tied scores
THRESHOLDS = np.array([0.3, 0.4, 0.5, 0.6, 0.35])
Y_CLASS = RNG.integers(0, 4, N)
P_CLASS = RNG.dirichlet(np.ones(4), N) + np.eye(4)[Y_CLASS] * 0.3
P_CLASS /= P_CLASS.sum(axis=1, keepdims=True)


def _resampled(counts_row, *arrays):
    rows = np.repeat(np.arange(N), counts_row.astype(int))
    return [a[rows] for a in arrays]


def test_multi_label_bootstrap_equals_sklearn_on_each_resample():
    counts = resample_counts(N, 5, seed=1)
    scores = resampled_scores("multi_label", Y, PROBS, THRESHOLDS, counts)
    for b in range(5):
        y, p = _resampled(counts[b], Y, PROBS)
        kept = [j for j in range(L) if 0 < y[:, j].sum() < len(y)]
        assert scores["macro_roc_auc"][b] == pytest.approx(
            np.mean([roc_auc_score(y[:, j], p[:, j]) for j in kept])
        )
        for tag, t in (("default", 0.5), ("tuned", THRESHOLDS)):
            pred = p >= t
            assert scores[f"{tag}.micro_f1"][b] == pytest.approx(
                f1_score(y, pred, average="micro", zero_division=0)
            )
            assert scores[f"{tag}.macro_f1"][b] == pytest.approx(
                f1_score(y, pred, average="macro", zero_division=0)
            )
            assert scores[f"{tag}.subset_accuracy"][b] == pytest.approx(accuracy_score(y, pred))


def test_multi_class_bootstrap_equals_sklearn_on_each_resample():
    counts = resample_counts(N, 5, seed=2)
    scores = resampled_scores("multi_class", Y_CLASS, P_CLASS, None, counts)
    for b in range(5):
        y, p = _resampled(counts[b], Y_CLASS, P_CLASS)
        pred = p.argmax(axis=1)
        assert scores["accuracy"][b] == pytest.approx(accuracy_score(y, pred))
        assert scores["macro_f1"][b] == pytest.approx(
            f1_score(y, pred, average="macro", labels=range(4), zero_division=0)
        )
        assert scores["weighted_f1"][b] == pytest.approx(
            f1_score(y, pred, average="weighted", labels=range(4), zero_division=0)
        )
        assert scores["macro_roc_auc"][b] == pytest.approx(
            roc_auc_score(y, p, multi_class="ovr", average="macro")
        )


def test_intervals_are_seeded_and_bracket_the_spread():
    a = bootstrap_intervals("multi_label", Y, PROBS, THRESHOLDS, n_resamples=200, seed=3)
    assert a == bootstrap_intervals("multi_label", Y, PROBS, THRESHOLDS, n_resamples=200, seed=3)
    assert a != bootstrap_intervals("multi_label", Y, PROBS, THRESHOLDS, n_resamples=200, seed=4)
    full = f1_score(Y, PROBS >= THRESHOLDS, average="macro", zero_division=0)
    low, high = a["tuned.macro_f1"]
    assert low < full < high and high - low < 0.2


def test_thresholded_scores_are_sklearns():
    scores = multi_label_scores(Y, PROBS, tuple("abcde"), THRESHOLDS)
    pred = PROBS >= THRESHOLDS
    assert "tuned_macro_f1" not in scores  # never tune on the split being scored
    assert scores["macro_precision"] == pytest.approx(
        precision_score(Y, pred, average="macro", zero_division=0)
    )
    assert scores["micro_recall"] == pytest.approx(
        recall_score(Y, pred, average="micro", zero_division=0)
    )
    tn, fp, fn, tp = (
        int(((Y[:, 2] == a) & (pred[:, 2] == b)).sum())
        for a, b in ((0, 0), (0, 1), (1, 0), (1, 1))
    )
    assert scores["per_label"]["c"]["confusion"] == [[tn, fp], [fn, tp]]
    classes = multi_class_scores(Y_CLASS, P_CLASS, tuple("wxyz"))
    assert np.trace(classes["confusion"]) == (P_CLASS.argmax(axis=1) == Y_CLASS).sum()
    assert sum(v["predicted_positive"] for v in classes["per_label"].values()) == N
