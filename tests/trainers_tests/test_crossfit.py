"""Cross-fitted thresholds: every row predicted once by a model that never saw it, and the
val-halves comparison of the two threshold routes (tiny models, real UCC rows)."""

from __future__ import annotations

import numpy as np

from testing.data import UCC_LABELS, slice_dataset
from testing.specs import tiny_architecture
from trainers.config import DataConfig, Hyperparams, ModelConfig, TrainConfig
from trainers.crossfit import compare_threshold_sources, crossfit_thresholds, out_of_fold
from trainers.data import read_csv


def _config(tmp_path) -> TrainConfig:
    root = slice_dataset(tmp_path, "ucc", {"train": 120, "val": 80, "test": 10}) / "ucc"
    return TrainConfig(
        task="multi_label",
        data=DataConfig(
            train_path=root / "train.csv",
            val_path=root / "val.csv",
            test_path=root / "test.csv",
            text_column="comment",
            label_columns=tuple(UCC_LABELS),
        ),  # fmt: skip
        model=ModelConfig(from_config=tiny_architecture(), max_length=32),
        hyper=Hyperparams(epochs=1, batch_size=32, learning_rate=1e-3),
        monitor="macro_roc_auc",
        monitor_mode="max",
    )


def test_every_row_gets_one_out_of_fold_prediction(tmp_path) -> None:
    config = _config(tmp_path)
    frame = read_csv(config.data.train_path)
    y, probs = out_of_fold(config, frame, folds=2)
    assert probs.shape == (120, 8) and y.shape == (120, 8)
    assert sorted(map(tuple, y)) == sorted(
        map(tuple, frame[list(UCC_LABELS)].astype(float).astype(int).to_numpy())
    )
    assert np.all((probs >= 0) & (probs <= 1))
    thresholds = crossfit_thresholds(config, folds=2)  # over train + val: 200 rows
    assert thresholds.shape == (8,) and np.all((thresholds > 0) & (thresholds <= 1))


def test_both_threshold_routes_are_scored_on_the_held_out_half(tmp_path) -> None:
    result = compare_threshold_sources(_config(tmp_path), folds=2)
    assert len(result.per_half) == 2
    for value in (result.val, result.cross_fit):
        assert 0.0 <= value <= 1.0
