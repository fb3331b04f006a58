"""The side models a delivered transformer is blended with, each at its weight.

The delivered probabilities are `(1 - sum(w)) * transformer + sum(w_i * side_i)`: a convex
mix, so a multi-class row still sums to 1. A side model is a logistic regression over a cheap
view of the text that the fine-tuned transformer does not have: TF-IDF n-grams
(trainers.ngram) or a frozen sentence encoder's embedding (trainers.embeddings). Each one keeps
its weight in its own card, so a model folder's blend is whichever side models' files it holds.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from trainers.checkpoint import BLEND_FILES, EMBEDDINGS, NGRAMS
from trainers.config import Task

# kind -> the module and class of that side model, and what a report calls it
SIDE_MODELS = {
    NGRAMS: ("trainers.ngram", "NgramModel", "a TF-IDF n-gram logistic regression"),
    EMBEDDINGS: (
        "trainers.embeddings",
        "EmbeddingModel",
        "a sentence-embedding logistic regression",
    ),
}


class SideModel(Protocol):
    task: Task

    def probabilities(self, texts: Sequence[str]) -> np.ndarray: ...

    def save(self, directory: str | Path, weight: float) -> None: ...


def side_model_class(kind: str):
    module, name, _ = SIDE_MODELS[kind]
    return getattr(importlib.import_module(module), name)


@dataclass
class Blend:
    """Side models by kind, each with its weight in the mix (> 0)."""

    parts: dict[str, tuple[SideModel, float]]

    def mix(self, probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        sides = {kind: model.probabilities(texts) for kind, (model, _) in self.parts.items()}
        return mix(probs, sides, self.weights).astype(probs.dtype)

    @property
    def weights(self) -> dict[str, float]:
        return {kind: weight for kind, (_, weight) in self.parts.items()}

    def save(self, directory: str | Path) -> None:
        for model, weight in self.parts.values():
            model.save(directory, weight)

    @classmethod
    def load(cls, directory: str | Path, shown_as: str | Path | None = None) -> Blend | None:
        """The side models whose cards are in `directory`; None when there are none (the side
        models' own libraries are imported only for the kinds present)."""
        directory = Path(directory)
        parts = {
            kind: side_model_class(kind).load(directory, shown_as=shown_as)
            for kind, card in BLEND_FILES.items()
            if (directory / card).is_file()
        }
        return cls(parts) if parts else None


def mix(
    model_probs: np.ndarray, side_probs: dict[str, np.ndarray], weights: dict[str, float]
) -> np.ndarray:
    """The delivered probabilities: the transformer's share is what the side models leave."""
    out = (1.0 - sum(weights.values())) * model_probs
    for kind, weight in weights.items():
        out = out + weight * side_probs[kind]
    return out
