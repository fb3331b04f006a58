"""Tiny untrained classifiers for tests: the test architecture (testing.specs.tiny_architecture)
with its tokenizer, and random labels so the output bias starts at a prior."""

from __future__ import annotations

import numpy as np

from testing.specs import tiny_architecture
from trainers.config import Hyperparams, ModelConfig
from trainers.fusion import build_model
from trainers.model import load_tokenizer

TINY_MODEL = ModelConfig(from_config=tiny_architecture(), max_length=32)


def tiny_classifier(task: str, names: tuple[str, ...], hyper: Hyperparams, n_features: int = 0):
    """(model in eval mode, tokenizer); the fusion model when `hyper` asks for it."""
    tokenizer = load_tokenizer(TINY_MODEL)
    rng = np.random.default_rng(0)
    labels = (
        (rng.random((20, len(names))) < 0.3).astype(np.float32)
        if task == "multi_label"
        else rng.integers(0, len(names), 20)
    )
    model = build_model(TINY_MODEL, task, names, labels, hyper, n_features, tokenizer.pad_token_id)
    return model.eval(), tokenizer
