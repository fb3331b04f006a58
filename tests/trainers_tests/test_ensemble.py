"""A seed ensemble predicts its members' mean probability and saves and reloads as one model
directory (fp32 and int8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testing.data import UCC_LABELS
from testing.models import TINY_MODEL, tiny_classifier
from trainers.checkpoint import BestModel, LabelInfo, load_best, save_best
from trainers.config import Hyperparams
from trainers.ensemble import ENSEMBLE_FILE, SeedEnsemble, members_of
from trainers.evaluate import predict_probabilities

TEXTS = ["You are an idiot!", "Thanks, that is helpful.", "Maybe. I am not sure.", "NO."]
CLASSES = ("negative", "neutral", "positive")


def _members(task: str, names: tuple[str, ...], hyper: Hyperparams, n: int = 3):
    """`n` tiny classifiers, each initialised from its own torch seed, and their tokenizer."""
    models = []
    for seed in range(n):
        torch.manual_seed(seed)
        model, tokenizer = tiny_classifier(task, names, hyper)
        models.append(model)
    return models, tokenizer


def _probs(model, tokenizer, task, names):
    labels = LabelInfo(task, names, "text", TINY_MODEL.max_length)
    return predict_probabilities(BestModel(model, tokenizer, labels, None, None), TEXTS)[0]


@pytest.mark.parametrize(
    ("task", "names", "hyper"),
    [
        ("multi_label", UCC_LABELS, Hyperparams()),
        ("multi_label", UCC_LABELS, Hyperparams(pooling="mean")),  # the fusion model
        ("multi_class", CLASSES, Hyperparams()),
    ],
)
def test_the_ensemble_predicts_the_mean_probability_and_reloads(tmp_path, task, names, hyper):
    members, tokenizer = _members(task, names, hyper)
    each = [_probs(m, tokenizer, task, names) for m in members]
    assert not np.allclose(each[0], each[1], atol=1e-4)  # the seeds differ
    ensemble = SeedEnsemble(members, task)
    mean = _probs(ensemble, tokenizer, task, names)
    np.testing.assert_allclose(mean, np.mean(each, axis=0), atol=1e-5)

    save_best(tmp_path, ensemble, tokenizer, LabelInfo(task, names, "text", TINY_MODEL.max_length))
    assert (tmp_path / ENSEMBLE_FILE).is_file() and (tmp_path / "member-2").is_dir()
    loaded = load_best(tmp_path)
    assert isinstance(loaded.model, SeedEnsemble) and len(members_of(loaded.model)) == 3
    np.testing.assert_allclose(predict_probabilities(loaded, TEXTS)[0], mean, atol=1e-5)


def test_an_int8_ensemble_rebuilds_from_its_skeleton(tmp_path):
    from trainers.quantize import load_int8, quantize_int8, save_int8

    members, tokenizer = _members("multi_label", UCC_LABELS, Hyperparams(), n=2)
    ensemble = SeedEnsemble(members, "multi_label")
    quantized = quantize_int8(ensemble)
    save_int8(quantized, ensemble, tmp_path)
    loaded = load_int8(tmp_path)
    assert isinstance(loaded, SeedEnsemble)
    np.testing.assert_allclose(
        _probs(loaded, tokenizer, "multi_label", UCC_LABELS),
        _probs(quantized, tokenizer, "multi_label", UCC_LABELS),
        atol=1e-5,
    )
