"""A bag-of-n-grams linear model, blended with a transformer's probabilities.

A fine-tuned transformer and a TF-IDF logistic regression err on different comments: the
regression reads surface forms (words, word pairs, character n-grams) that the transformer's
sub-word view smooths over. Mixing their probabilities, `(1 - w) * transformer + w * n-grams`
with `w` chosen on validation, is the classic cheap ensemble of text classification: it costs
seconds to fit and microseconds per text to apply.

Fitting: word 1-2-grams and character 2-5-grams within word boundaries (sublinear TF-IDF, terms
in at least two training texts); per label (multi-label) or over the classes (multi-class) a
logistic regression with balanced class weights, its L2 strength chosen by stratified
cross-validation on the training texts only.

On disk, as data that loading cannot execute (no pickle): `ngram.json` (the blend weight, the
task, each vectoriser's vocabulary and idf) and `ngram.safetensors` (coefficients, intercepts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegressionCV

from trainers.checkpoint import NGRAM_FILE
from trainers.config import Task
from trainers.errors import TrainerError

NGRAM_WEIGHTS_FILE = "ngram.safetensors"
# The L2 strengths cross-validation chooses from; on UCC (3,575 training comments) every label
# chose the strongest regularisation offered in a grid that stopped at 0.05.
C_GRID = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
MAX_FOLDS = 5
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
    """ngram.json: what the blend is and the vectorisers' fitted state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    weight: float
    n_outputs: int
    vocabularies: dict[str, _Vocabulary]


@dataclass
class NgramModel:
    """Fitted vectorisers and a linear layer: (n_outputs, n_terms) coefficients, intercepts."""

    task: Task
    vectorisers: dict[str, TfidfVectorizer]
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(
        cls, texts: Sequence[str], labels: np.ndarray, task: Task, seed: int = 0
    ) -> NgramModel:
        """`labels`: (n, labels) 0/1 for multi-label, (n,) class ids for multi-class."""
        vectorisers = {kind: _vectoriser(kind) for kind in VECTORISERS}
        x = sparse.hstack([v.fit_transform(texts) for v in vectorisers.values()]).tocsr()
        if task == "multi_label":
            fitted = [_fit_binary(x, labels[:, j], seed) for j in range(labels.shape[1])]
            coef = np.vstack([c for c, _ in fitted])
            intercept = np.array([b for _, b in fitted])
        else:
            coef, intercept = _fit_classes(x, labels, seed)
        return cls(task, vectorisers, coef.astype(np.float32), intercept.astype(np.float32))

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        x = sparse.hstack([v.transform(texts) for v in self.vectorisers.values()]).tocsr()
        logits = np.asarray(x @ self.coef.T) + self.intercept
        if self.task == "multi_label":
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)


def _fit_binary(x: sparse.csr_matrix, y: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """One label's coefficients and intercept; a label with too few examples of either kind
    for cross-validation predicts its training rate."""
    y = np.asarray(y).astype(np.int64)
    folds = min(MAX_FOLDS, int(y.sum()), int(len(y) - y.sum()))
    if folds < 2:
        rate = np.clip(y.mean(), 1e-4, 1 - 1e-4)
        return np.zeros(x.shape[1]), float(np.log(rate / (1 - rate)))
    model = _cv_model(folds, "roc_auc", seed).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def _fit_classes(x: sparse.csr_matrix, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y)
    folds = min(MAX_FOLDS, int(counts[counts > 0].min()))
    if folds < 2 or (counts > 0).sum() < 2:
        raise TrainerError(
            "the n-gram blend needs at least 2 training texts of every class present; drop `blend`"
        )
    model = _cv_model(folds, "neg_log_loss", seed).fit(x, y)
    fitted_coef, fitted_intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row, the second class's logit against a first fixed at 0
        fitted_coef = np.vstack([np.zeros_like(fitted_coef), fitted_coef])
        fitted_intercept = np.concatenate([[0.0], fitted_intercept])
    coef = np.zeros((len(counts), x.shape[1]))
    intercept = np.full(len(counts), -30.0)  # a class never seen in training is never predicted
    coef[model.classes_], intercept[model.classes_] = fitted_coef, fitted_intercept
    return coef, intercept


def _cv_model(folds: int, scoring: str, seed: int) -> LogisticRegressionCV:
    from sklearn.model_selection import StratifiedKFold

    return LogisticRegressionCV(
        Cs=list(C_GRID), l1_ratios=(0.0,), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring=scoring, class_weight="balanced", max_iter=2000, use_legacy_attributes=False,
    )  # fmt: skip


@dataclass
class NgramBlend:
    """An n-gram model and the weight its probabilities get in the delivered mix."""

    model: NgramModel
    weight: float

    def mix(self, probs: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        return mix(probs, self.model.probabilities(texts), self.weight).astype(probs.dtype)

    def save(self, directory: str | Path) -> None:
        from safetensors.numpy import save_file

        directory = Path(directory)
        m = self.model
        card = NgramCard(
            task=m.task,
            weight=self.weight,
            n_outputs=m.coef.shape[0],
            vocabularies={
                kind: _Vocabulary(
                    terms=sorted(v.vocabulary_, key=v.vocabulary_.get),
                    idf=[float(i) for i in v.idf_],
                )
                for kind, v in m.vectorisers.items()
            },
        )
        (directory / NGRAM_FILE).write_text(card.model_dump_json())
        save_file({"coef": m.coef, "intercept": m.intercept}, str(directory / NGRAM_WEIGHTS_FILE))

    @classmethod
    def load(cls, directory: str | Path, shown_as: str | Path | None = None) -> NgramBlend:
        """Rebuild the fitted blend from its numbers: no fitting, no unpickling."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        shown = Path(shown_as or directory)
        try:
            card = NgramCard.model_validate_json((directory / NGRAM_FILE).read_bytes())
            arrays = load_file(str(directory / NGRAM_WEIGHTS_FILE))
        except (OSError, ValidationError, ValueError) as e:
            raise TrainerError(
                f"{shown}: its n-gram blend ({NGRAM_FILE}, {NGRAM_WEIGHTS_FILE}) cannot be read ({type(e).__name__}); retrain the model"
            ) from None
        vectorisers = {}
        for kind, vocabulary in card.vocabularies.items():
            v = _vectoriser(kind)
            v.set_params(vocabulary={t: i for i, t in enumerate(vocabulary.terms)})
            v.idf_ = np.asarray(vocabulary.idf, dtype=np.float64)
            vectorisers[kind] = v
        n_terms = sum(len(v.terms) for v in card.vocabularies.values())
        coef, intercept = arrays.get("coef"), arrays.get("intercept")
        if (
            coef is None
            or intercept is None
            or coef.shape != (card.n_outputs, n_terms)
            or intercept.shape != (card.n_outputs,)
        ):
            raise TrainerError(
                f"{shown / NGRAM_WEIGHTS_FILE}: its coefficients do not fit {NGRAM_FILE}'s {n_terms} terms and {card.n_outputs} outputs; retrain the model"
            )  # fmt: skip
        return cls(NgramModel(card.task, vectorisers, coef, intercept), card.weight)


def mix(model_probs: np.ndarray, ngram_probs: np.ndarray, weight: float) -> np.ndarray:
    """The delivered probabilities: a convex mix, so a multi-class row still sums to 1."""
    return (1.0 - weight) * model_probs + weight * ngram_probs
