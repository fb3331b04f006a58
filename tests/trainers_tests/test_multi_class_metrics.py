"""Multi-class validation and test figures agree with scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_score, recall_score

from trainers.metrics import multi_class_metrics


def test_weighted_precision_and_recall_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.choice(5, size=300, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    probs = rng.dirichlet(np.ones(5), 300) + np.eye(5)[y] * 0.3
    pred = probs.argmax(axis=1)
    m = multi_class_metrics(y, probs, ("a", "b", "c", "d", "e"))
    assert m["weighted_precision"] == pytest.approx(
        precision_score(y, pred, average="weighted", zero_division=0)
    )
    assert m["weighted_recall"] == pytest.approx(
        recall_score(y, pred, average="weighted", zero_division=0)
    )
    assert m["weighted_recall"] == pytest.approx(
        m["accuracy"]
    )  # support-weighted recall is accuracy
    assert m["weighted_precision"] != pytest.approx(
        m["macro_precision"]
    )  # the classes are imbalanced
