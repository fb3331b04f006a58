"""Thresholds from out-of-fold predictions (cross-fitting) instead of validation alone.

UCC's validation split has 15-42 positives per rare label, so a threshold picked on it moves
when one comment changes. Cross-fitting trains one model per fold of train + val on the other
folds and predicts the held-out fold: every comment of train + val gets a prediction from a
model that never saw it, several times the positives of val alone. The thresholds picked on
those predictions are then used with the model trained on train. The folds' models train the
same epochs as the delivered one and keep their best epoch on their held-out fold, a mild
optimism the delivered model shares with the val route.

`compare_threshold_sources` measures both routes on data neither saw: each half of val in turn
is held out, the other half is "val".
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainers.config import TrainConfig
from trainers.data import load_split, read_csv
from trainers.thresholds import apply_thresholds, best_f1_thresholds


def crossfit_thresholds(config: TrainConfig, folds: int, seed: int = 0) -> np.ndarray:
    """Per-label thresholds on out-of-fold predictions over train + val."""
    frame = pd.concat(
        [
            read_csv(config.data.train_path, config.data.encoding),
            read_csv(config.data.val_path, config.data.encoding),
        ]
    )
    y, probs = out_of_fold(config, frame.reset_index(drop=True), folds, seed)
    return best_f1_thresholds(y, probs)


def out_of_fold(
    config: TrainConfig, frame: pd.DataFrame, folds: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(labels, probabilities) of every row of `frame`, each from the model not trained on it."""
    from trainers.loop import train_and_evaluate

    fold_of = np.random.default_rng(seed).permutation(len(frame)) % folds
    y, probs = [], []
    with tempfile.TemporaryDirectory(prefix="crossfit-") as tmp:
        for k in range(folds):
            cfg = _with_splits(
                config, frame[fold_of != k], frame[fold_of == k], Path(tmp) / str(k)
            )
            result = train_and_evaluate(cfg)
            y.append(load_split(cfg.data.val_path, cfg.data, cfg.task).labels.astype(np.int64))
            probs.append(result.val_probs)
    return np.concatenate(y), np.concatenate(probs)


@dataclass(frozen=True)
class ThresholdComparison:
    """Macro F1 on held-out val halves at thresholds from each route (mean over the two halves)."""

    val: float
    cross_fit: float
    per_half: list[dict[str, float]]


def compare_threshold_sources(
    config: TrainConfig, folds: int, seed: int = 0
) -> ThresholdComparison:
    """Val-tuned against cross-fitted thresholds, scored on the val half neither saw."""
    from trainers.loop import train_and_evaluate

    train = read_csv(config.data.train_path, config.data.encoding)
    val = read_csv(config.data.val_path, config.data.encoding)
    half = np.random.default_rng(seed).permutation(len(val)) % 2
    per_half = []
    with tempfile.TemporaryDirectory(prefix="thresholds-") as tmp:
        for h in (0, 1):
            tune, held = val[half != h], val[half == h]
            # The delivered model: trained on train, "val" = the tuning half, scored on the held half.
            cfg = _with_splits(config, train, tune, Path(tmp) / f"h{h}", test=held)
            model = train_and_evaluate(cfg, keep_model=True)
            y_tune = load_split(cfg.data.val_path, cfg.data, cfg.task).labels.astype(np.int64)
            y_held, p_held = _predict(cfg, model)
            by_val = best_f1_thresholds(y_tune, model.val_probs)
            y_oof, p_oof = out_of_fold(
                cfg, pd.concat([train, tune]).reset_index(drop=True), folds, seed
            )
            by_oof = best_f1_thresholds(y_oof, p_oof)
            per_half.append(
                {
                    "val": _macro_f1(y_held, p_held, by_val),
                    "cross_fit": _macro_f1(y_held, p_held, by_oof),
                }
            )
    return ThresholdComparison(
        val=float(np.mean([r["val"] for r in per_half])),
        cross_fit=float(np.mean([r["cross_fit"] for r in per_half])),
        per_half=per_half,
    )


def _macro_f1(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(
        f1_score(y, apply_thresholds(probs, thresholds), average="macro", zero_division=0)
    )


def _predict(cfg: TrainConfig, result) -> tuple[np.ndarray, np.ndarray]:
    from trainers.checkpoint import BestModel, LabelInfo
    from trainers.evaluate import predict_probabilities

    test = load_split(cfg.data.test_path, cfg.data, cfg.task)
    labels = LabelInfo.of(cfg)
    probs, _ = predict_probabilities(
        BestModel(result.model, result.tokenizer, labels, None, None), test.texts
    )
    return test.labels.astype(np.int64), probs


def _with_splits(
    config: TrainConfig,
    train: pd.DataFrame,
    val: pd.DataFrame,
    folder: Path,
    test: pd.DataFrame | None = None,
) -> TrainConfig:
    folder.mkdir(parents=True)
    paths = {"train_path": folder / "train.csv", "val_path": folder / "val.csv"}
    train.to_csv(paths["train_path"], index=False)
    val.to_csv(paths["val_path"], index=False)
    if test is not None:
        paths["test_path"] = folder / "test.csv"
        test.to_csv(paths["test_path"], index=False)
    data = config.data.model_copy(update={**paths, "encoding": "utf-8"})
    return config.model_copy(update={"data": data})
