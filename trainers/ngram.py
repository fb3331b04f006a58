"""A bag-of-n-grams linear model, blended with a transformer's probabilities.

A fine-tuned transformer and a TF-IDF logistic regression err on different comments: the
regression reads surface forms (words, word pairs, character n-grams) that the transformer's
sub-word view smooths over. Mixing their probabilities, with the weight chosen on validation
(trainers.blend), is the classic cheap ensemble of text classification: it costs seconds to fit
and microseconds per text to apply.

Fitting: word 1-2-grams and character 2-5-grams within word boundaries (sublinear TF-IDF, terms
in at least two training texts), then a logistic regression (trainers.linear).

On disk, as data that loading cannot execute (no pickle): `ngram.json` (the blend weight, the
task, each vectoriser's vocabulary and idf) and `ngram.safetensors` (coefficients, intercepts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from trainers.checkpoint import NGRAM_FILE
from trainers.config import Task
from trainers.linear import LinearHead, read_side_model

NGRAM_WEIGHTS_FILE = "ngram.safetensors"
# The L2 strengths cross-validation chooses from; on UCC (3,575 training comments) every label
# chose the strongest regularisation offered in a grid that stopped at 0.05.
C_GRID = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
VECTORISERS = {
    "word": {"analyzer": "word", "ngram_range": (1, 2)},
    "char": {"analyzer": "char_wb", "ngram_range": (2, 5)},
}


def _vectoriser(kind: str) -> TfidfVectorizer:
    return TfidfVectorizer(**VECTORISERS[kind], min_df=2, sublinear_tf=True, dtype=np.float32)


class _Vocabulary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    terms: list[str]
    idf: list[float]


class NgramCard(BaseModel):
    """ngram.json: what the side model is and the vectorisers' fitted state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    weight: float
    n_outputs: int
    vocabularies: dict[str, _Vocabulary]


@dataclass
class NgramModel:
    """Fitted vectorisers and a logistic-regression head over their terms."""

    vectorisers: dict[str, TfidfVectorizer]
    head: LinearHead

    @classmethod
    def fit(
        cls, texts: Sequence[str], labels: np.ndarray, task: Task, seed: int = 0
    ) -> NgramModel:
        """`labels`: (n, labels) 0/1 for multi-label, (n,) class ids for multi-class."""
        vectorisers = {kind: _vectoriser(kind) for kind in VECTORISERS}
        x = sparse.hstack([v.fit_transform(texts) for v in vectorisers.values()]).tocsr()
        return cls(vectorisers, LinearHead.fit(x, labels, task, C_GRID, seed))

    @property
    def task(self) -> Task:
        return self.head.task

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        x = sparse.hstack([v.transform(texts) for v in self.vectorisers.values()]).tocsr()
        return self.head.probabilities(x)

    def save(self, directory: str | Path, weight: float) -> None:
        directory = Path(directory)
        card = NgramCard(
            task=self.task,
            weight=weight,
            n_outputs=self.head.n_outputs,
            vocabularies={
                kind: _Vocabulary(
                    terms=sorted(v.vocabulary_, key=v.vocabulary_.get),
                    idf=[float(i) for i in v.idf_],
                )
                for kind, v in self.vectorisers.items()
            },
        )
        (directory / NGRAM_FILE).write_text(card.model_dump_json())
        self.head.save(directory / NGRAM_WEIGHTS_FILE)

    @classmethod
    def load(
        cls, directory: str | Path, shown_as: str | Path | None = None
    ) -> tuple[NgramModel, float]:
        """The fitted side model and its weight in the mix, rebuilt from its numbers: no
        fitting, no unpickling."""
        directory = Path(directory)
        shown = Path(shown_as or directory)
        card, head = read_side_model(directory, NGRAM_FILE, NGRAM_WEIGHTS_FILE, NgramCard, "n-gram", shown)  # fmt: skip
        vectorisers = {}
        for kind, vocabulary in card.vocabularies.items():
            v = _vectoriser(kind)
            v.set_params(vocabulary={t: i for i, t in enumerate(vocabulary.terms)})
            v.idf_ = np.asarray(vocabulary.idf, dtype=np.float64)
            vectorisers[kind] = v
        n_terms = sum(len(v.terms) for v in card.vocabularies.values())
        head.check_fits(n_terms, card.n_outputs, shown / NGRAM_WEIGHTS_FILE, NGRAM_FILE)
        return cls(vectorisers, head), card.weight
