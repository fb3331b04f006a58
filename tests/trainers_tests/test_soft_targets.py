"""Soft targets from annotator agreement: read from the data, and what training aims at."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from testing.data import UCC_LABELS
from testing.specs import tiny_train_config
from trainers.config import DataConfig, TrainConfig
from trainers.data import load_split, soft_targets
from trainers.errors import DataError, TrainerError
from trainers.loop import prepare, train_and_evaluate


def test_soft_targets_move_labels_toward_the_annotators_share():
    labels = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    agreement = np.array([[0.67, 0.67], [1.0, 0.6]], dtype=np.float32)
    np.testing.assert_allclose(
        soft_targets(labels, agreement, 1.0), [[0.67, 0.33], [0.0, 0.6]], atol=1e-6
    )
    np.testing.assert_allclose(
        soft_targets(labels, agreement, 0.5), [[0.835, 0.165], [0.0, 0.8]], atol=1e-6
    )
    np.testing.assert_array_equal(soft_targets(labels, agreement, 0.0), labels)


def test_ucc_agreement_is_read_beside_the_labels(real_data):
    base = real_data.root / "ucc"
    config = DataConfig(
        train_path=base / "train.csv",
        val_path=base / "val.csv",
        text_column="comment",
        label_columns=UCC_LABELS,
        agreement_suffix=":confidence",
    )
    split = load_split(config.train_path, config, "multi_label")
    assert split.agreement.shape == split.labels.shape and split.agreement.dtype == np.float32
    hostile = UCC_LABELS.index("hostile")
    positives = split.agreement[split.labels[:, hostile] == 1, hostile]
    assert (
        positives.min() >= 0.5 and positives.mean() < 0.8
    )  # rare labels: often 2 of 3 annotators


def test_bad_agreement_value_is_a_one_line_error(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a", "b"], "x": [1, 0], "x:confidence": ["0.7", "high"]}).to_csv(
        path, index=False
    )
    config = DataConfig(
        train_path=path,
        val_path=path,
        text_column="text",
        label_columns=("x",),
        agreement_suffix=":confidence",
    )
    with pytest.raises(
        DataError,
        match=r"agreement column 'x:confidence' must hold shares in \[0, 1\], but has 'high'",
    ):
        load_split(path, config, "multi_label")


def _config(tmp_path, agreement: float, **hyper) -> TrainConfig:
    rng = np.random.default_rng(0)
    rows = [
        {
            "text": " ".join(rng.choice(["river", "stone", "alpha", "cloud"], size=5)),
            "a": int(rng.random() < 0.3),
            "a:confidence": agreement,
        }
        for _ in range(96)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "d.csv", index=False)
    data = DataConfig(
        train_path=tmp_path / "d.csv",
        val_path=tmp_path / "d.csv",
        text_column="text",
        label_columns=("a",),
        agreement_suffix=":confidence",
        cache_dir=tmp_path / "cache",
    )
    return tiny_train_config(
        data, max_length=16, **{"epochs": 2, "batch_size": 16, "learning_rate": 2e-3, **hyper}
    )


def test_training_aims_at_the_soft_targets(tmp_path):
    """Annotators split 50:50 on every row: the soft target is 0.5 everywhere, and BCE against
    0.5 can never fall below ln 2, while the 0/1 labels (30 % positive) let it fall under that."""
    run = prepare(_config(tmp_path, 0.5, soft_label_weight=1.0))
    np.testing.assert_array_equal(run.train.targets, np.full_like(run.train.labels, 0.5))
    np.testing.assert_array_equal(
        run.val.targets, run.val.labels
    )  # validation keeps its 0/1 labels
    soft = train_and_evaluate(_config(tmp_path, 0.5, soft_label_weight=1.0)).history
    hard = train_and_evaluate(_config(tmp_path, 0.5)).history
    assert all(m["train_loss"] >= math.log(2) - 1e-4 for m in soft)
    assert hard[-1]["train_loss"] < math.log(2) - 0.05


def test_soft_labels_without_agreement_columns_say_what_to_set(tmp_path):
    config = _config(tmp_path, 0.5, soft_label_weight=0.5)
    config = config.model_copy(
        update={"data": config.data.model_copy(update={"agreement_suffix": None})}
    )
    with pytest.raises(TrainerError, match="soft_label_weight 0.5 needs data.agreement_suffix"):
        prepare(config)
