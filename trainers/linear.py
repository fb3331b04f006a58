"""The logistic-regression head of a side model (trainers.ngram, trainers.embeddings).

Per label (multi-label) or over the classes (multi-class), with balanced class weights and the
L2 strength chosen by stratified cross-validation on the training texts only. Fitted, it is two
arrays, applied with numpy: loading a side model imports no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from trainers.config import Task
from trainers.errors import TrainerError

Card = TypeVar("Card", bound=BaseModel)

MAX_FOLDS = 5


@dataclass
class LinearHead:
    """(n_outputs, n_features) coefficients and (n_outputs,) intercepts."""

    task: Task
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def fit(
        cls, x, labels: np.ndarray, task: Task, c_grid: tuple[float, ...], seed: int = 0
    ) -> LinearHead:
        """`x`: (n, features), sparse or dense; `labels`: (n, labels) 0/1 for multi-label, (n,)
        class ids for multi-class."""
        if task == "multi_label":
            fitted = [_fit_binary(x, labels[:, j], c_grid, seed) for j in range(labels.shape[1])]
            coef = np.vstack([c for c, _ in fitted])
            intercept = np.array([b for _, b in fitted])
        else:
            coef, intercept = _fit_classes(x, labels, c_grid, seed)
        return cls(task, coef.astype(np.float32), intercept.astype(np.float32))

    @property
    def n_outputs(self) -> int:
        return self.coef.shape[0]

    def probabilities(self, x) -> np.ndarray:
        logits = np.asarray(x @ self.coef.T) + self.intercept
        if self.task == "multi_label":
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        save_file({"coef": self.coef, "intercept": self.intercept}, str(path))

    def check_fits(self, n_features: int, n_outputs: int, shown: Path, card: str) -> None:
        """Loaded arrays must match what the side model's card says."""
        if self.coef.shape != (n_outputs, n_features) or self.intercept.shape != (n_outputs,):
            raise TrainerError(
                f"{shown}: its coefficients do not fit {card}'s {n_features} features and {n_outputs} outputs; retrain the model"
            )


def read_side_model(
    directory: Path,
    card_file: str,
    weights_file: str,
    card_type: type[Card],
    what: str,
    shown: Path,
) -> tuple[Card, LinearHead]:
    """A side model's card (it has `task`) and its head: one line naming the files when either
    cannot be read or the head's arrays are missing."""
    from safetensors.numpy import load_file

    try:
        card = card_type.model_validate_json((directory / card_file).read_bytes())
        arrays = load_file(str(directory / weights_file))
    except (OSError, ValidationError, ValueError) as e:
        raise TrainerError(
            f"{shown}: its {what} side model ({card_file}, {weights_file}) cannot be read ({type(e).__name__}); retrain the model"
        ) from None
    coef, intercept = arrays.get("coef"), arrays.get("intercept")
    if coef is None or intercept is None:
        raise TrainerError(
            f"{shown / weights_file}: it lacks the coefficients or intercepts {card_file} describes; retrain the model"
        )
    return card, LinearHead(card.task, coef, intercept)  # type: ignore[attr-defined]


def _fit_binary(x, y: np.ndarray, c_grid, seed: int) -> tuple[np.ndarray, float]:
    """One label's coefficients and intercept; a label with too few examples of either kind
    for cross-validation predicts its training rate."""
    y = np.asarray(y).astype(np.int64)
    folds = min(MAX_FOLDS, int(y.sum()), int(len(y) - y.sum()))
    if folds < 2:
        rate = np.clip(y.mean(), 1e-4, 1 - 1e-4)
        return np.zeros(x.shape[1]), float(np.log(rate / (1 - rate)))
    model = _cv_model(folds, "roc_auc", c_grid, seed).fit(x, y)
    return model.coef_[0], float(model.intercept_[0])


def _fit_classes(x, y: np.ndarray, c_grid, seed: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(y)
    folds = min(MAX_FOLDS, int(counts[counts > 0].min()))
    if folds < 2 or (counts > 0).sum() < 2:
        raise TrainerError(
            "the blend's side models need at least 2 training texts of every class present; drop `blend`"
        )
    model = _cv_model(folds, "neg_log_loss", c_grid, seed).fit(x, y)
    fitted_coef, fitted_intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one row, the second class's logit against a first fixed at 0
        fitted_coef = np.vstack([np.zeros_like(fitted_coef), fitted_coef])
        fitted_intercept = np.concatenate([[0.0], fitted_intercept])
    coef = np.zeros((len(counts), x.shape[1]))
    intercept = np.full(len(counts), -30.0)  # a class never seen in training is never predicted
    coef[model.classes_], intercept[model.classes_] = fitted_coef, fitted_intercept
    return coef, intercept


def _cv_model(folds: int, scoring: str, c_grid, seed: int):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    return LogisticRegressionCV(
        Cs=list(c_grid), l1_ratios=(0.0,), cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
        scoring=scoring, class_weight="balanced", max_iter=2000, use_legacy_attributes=False,
    )  # fmt: skip
