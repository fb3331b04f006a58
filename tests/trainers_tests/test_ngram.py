"""The n-gram side model a delivered model can be blended with: it learns from real comments,
reloads from plain numbers to the same probabilities, copes with labels too rare to
cross-validate, and a damaged file is one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from testing.data import UCC_LABELS, RealData
from trainers.blend import Blend, mix
from trainers.errors import TrainerError
from trainers.ngram import NGRAM_FILE, NgramModel

LABELS = ["healthy", "antagonize", "hostile"]


@pytest.fixture(scope="module")
def ucc(real_data: RealData) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.read_csv(real_data.root / "ucc" / "train.csv").head(1500)
    val = pd.read_csv(real_data.root / "ucc" / "val.csv")
    return train, val


@pytest.fixture(scope="module")
def fitted(ucc) -> NgramModel:
    train, _ = ucc
    return NgramModel.fit(train.comment.tolist(), train[LABELS].to_numpy(), "multi_label")


def test_it_ranks_unseen_comments_better_than_chance(fitted, ucc):
    _, val = ucc
    probs = fitted.probabilities(val.comment.tolist())
    aucs = [roc_auc_score(val[name], probs[:, j]) for j, name in enumerate(LABELS)]
    assert probs.shape == (len(val), len(LABELS)) and min(aucs) > 0.6, aucs


def test_it_reloads_from_its_files_to_the_same_probabilities(fitted, ucc, tmp_path):
    _, val = ucc
    texts = val.comment.tolist()[:200]
    fitted.save(tmp_path, 0.3)
    loaded = Blend.load(tmp_path)
    assert loaded.weights == {"ngrams": 0.3} and not list(tmp_path.glob("*.pkl"))
    model, _ = loaded.parts["ngrams"]
    np.testing.assert_array_equal(model.probabilities(texts), fitted.probabilities(texts))
    model_probs = np.full((len(texts), len(LABELS)), 0.2, dtype=np.float32)
    np.testing.assert_allclose(
        loaded.mix(model_probs, texts), 0.7 * 0.2 + 0.3 * fitted.probabilities(texts), rtol=1e-6
    )


def test_a_label_too_rare_to_cross_validate_predicts_its_training_rate(ucc):
    train, val = ucc
    y = np.zeros((len(train), 2), dtype=np.int64)
    y[:, 0] = train["hostile"].to_numpy()
    y[0, 1] = 1  # one positive: no fold of a cross-validation can hold it
    model = NgramModel.fit(train.comment.tolist(), y, "multi_label")
    probs = model.probabilities(val.comment.tolist())
    np.testing.assert_allclose(probs[:, 1], 1 / len(train), rtol=1e-3)
    assert np.ptp(probs[:, 0]) > 0.1


def test_multi_class_rows_sum_to_one_and_mix_stays_a_distribution(ucc):
    train, val = ucc
    classes = train[list(UCC_LABELS[:3])].to_numpy().argmax(axis=1)  # any class ids will do
    model = NgramModel.fit(train.comment.tolist(), classes, "multi_class")
    probs = model.probabilities(val.comment.tolist())
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    uniform = np.full_like(probs, 1 / probs.shape[1])
    mixed = mix(uniform, {"ngrams": probs}, {"ngrams": 0.4})
    np.testing.assert_allclose(mixed.sum(axis=1), 1, rtol=1e-5)


def test_damaged_files_are_one_line(fitted, tmp_path):
    fitted.save(tmp_path, 0.3)
    card = json.loads((tmp_path / NGRAM_FILE).read_text())
    card["n_outputs"] = 5
    (tmp_path / NGRAM_FILE).write_text(json.dumps(card))
    with pytest.raises(TrainerError, match="do not fit") as e:
        NgramModel.load(tmp_path)
    assert "\n" not in str(e.value)
    (tmp_path / NGRAM_FILE).write_text("{")
    with pytest.raises(TrainerError, match="cannot be read"):
        NgramModel.load(tmp_path)


def test_two_classes_get_a_logit_each(ucc):
    """scikit-learn fits two classes with one row of coefficients; both classes must not share it."""
    train, val = ucc
    classes = train["hostile"].to_numpy()
    model = NgramModel.fit(train.comment.tolist(), classes, "multi_class")
    probs = model.probabilities(val.comment.tolist())
    assert model.head.n_outputs == 2 and np.ptp(probs[:, 1]) > 0.1
    assert roc_auc_score(val["hostile"], probs[:, 1]) > 0.6
