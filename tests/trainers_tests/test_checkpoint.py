"""The best-model directory: what is saved reloads and predicts the same probabilities, for the
plain classifier and for the fusion model with its fitted hand-made features."""

from __future__ import annotations

import numpy as np
import pytest

from testing.data import UCC_LABELS
from testing.models import TINY_MODEL, tiny_classifier
from trainers.checkpoint import (
    FEATURES_FILE,
    BestModel,
    LabelInfo,
    load_best,
    save_best,
    weights_size_mb,
)
from trainers.config import Hyperparams
from trainers.errors import TrainerError
from trainers.evaluate import predict_probabilities
from trainers.features import TextFeatureExtractor
from trainers.fusion import FusionClassifier

TEXTS = [
    "You are an idiot and everyone knows it!",
    "Thanks, that is a helpful point.",
    "Well, maybe. I am not sure that this is right, but it could be.",
    "NO. Just no.",
    "Interesting article, though the second half repeats the first.",
    "Why would anyone believe this?",
]


def test_plain_classifier_round_trip(tmp_path):
    names = UCC_LABELS
    model, tokenizer = tiny_classifier("multi_label", names, Hyperparams())
    labels = LabelInfo("multi_label", names, "comment", TINY_MODEL.max_length)
    thresholds = np.linspace(0.1, 0.8, len(names))
    save_best(tmp_path, model, tokenizer, labels, thresholds)
    loaded = load_best(tmp_path)
    assert loaded.labels == labels and loaded.extractor is None
    np.testing.assert_array_equal(loaded.thresholds, thresholds)
    assert (tmp_path / "model.safetensors").is_file() and not (tmp_path / FEATURES_FILE).exists()
    before, _ = predict_probabilities(BestModel(model, tokenizer, labels, thresholds, None), TEXTS)
    after, _ = predict_probabilities(loaded, TEXTS)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert after.shape == (len(TEXTS), len(names)) and not np.allclose(
        after, after[0]
    )  # texts differ, so do their scores
    assert weights_size_mb(tmp_path) == pytest.approx(
        (tmp_path / "model.safetensors").stat().st_size / 2**20
    )


def test_fusion_model_with_features_round_trip(tmp_path):
    names = ("Negative", "Neutral", "Positive")
    extractor = TextFeatureExtractor(tfidf_top_n=5).fit(TEXTS)
    hyper = Hyperparams(features=True, pooling="mean", feature_dim=4, text_projection_dim=8)
    model, tokenizer = tiny_classifier("multi_class", names, hyper, extractor.n_features)
    labels = LabelInfo("multi_class", names, "OriginalTweet", TINY_MODEL.max_length)
    save_best(tmp_path, model, tokenizer, labels, extractor=extractor)
    loaded = load_best(tmp_path)
    assert isinstance(loaded.model, FusionClassifier) and loaded.thresholds is None
    assert (
        loaded.extractor is not None and loaded.extractor.feature_names == extractor.feature_names
    )
    before, _ = predict_probabilities(BestModel(model, tokenizer, labels, None, extractor), TEXTS)
    after, _ = predict_probabilities(loaded, TEXTS)
    np.testing.assert_allclose(after, before, atol=1e-6)
    np.testing.assert_allclose(after.sum(axis=1), 1, atol=1e-5)
    assert weights_size_mb(tmp_path) > (tmp_path / FEATURES_FILE).stat().st_size / 2**20


def test_wrong_directories_and_thresholds_are_one_line_errors(tmp_path):
    with pytest.raises(TrainerError, match="not a saved model"):
        load_best(tmp_path)
    names = ("a", "b")
    model, tokenizer = tiny_classifier("multi_label", names, Hyperparams())
    with pytest.raises(TrainerError, match="3 thresholds for 2 labels"):
        save_best(
            tmp_path, model, tokenizer, LabelInfo("multi_label", names), np.array([0.1, 0.2, 0.3])
        )
