"""The trainer learns, reports every epoch, stops when told, and keeps its best epoch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from testing.specs import learnable_config as _config
from testing.specs import tiny_architecture
from trainers.config import ModelConfig
from trainers.loop import train_and_evaluate


class Recorder:
    def __init__(self, stop_after: int | None = None):
        self.epochs: list[tuple[int, dict]] = []
        self.stop_after = stop_after

    def report(self, epoch, metrics):
        self.epochs.append((epoch, metrics))
        return self.stop_after is not None and epoch >= self.stop_after


@pytest.mark.parametrize("model_type", ["bert", "roberta"])
def test_validation_loss_falls_on_a_learnable_task(tmp_path, model_type):
    recorder = Recorder()
    result = train_and_evaluate(_config(tmp_path, model_type), recorder)
    losses = [m["per_label"]["a"] for _, m in recorder.epochs]
    val_losses = [m["val_loss"] for _, m in recorder.epochs]
    assert [e for e, _ in recorder.epochs] == [1, 2, 3]
    assert val_losses[-1] < 0.85 * val_losses[0], val_losses
    assert losses[-1]["roc_auc"] > 0.95 and losses[-1]["f1"] > 0.9
    assert not result.stopped_early


def test_every_epoch_reports_the_documented_metrics(tmp_path):
    recorder = Recorder()
    train_and_evaluate(_config(tmp_path, epochs=1), recorder)
    _, metrics = recorder.epochs[0]
    for key in (
        "train_loss",
        "val_loss",
        "micro_f1",
        "macro_f1",
        "tuned_macro_f1",
        "subset_accuracy",
        "micro_roc_auc",
        "macro_roc_auc",
        "macro_ap",
        "epoch_time_s",
        "batch_loss_cv",
        "padding_share",
    ):
        assert isinstance(metrics[key], float) and math.isfinite(metrics[key]), key
    per_label = metrics["per_label"]["a"]
    assert set(per_label) >= {"precision", "recall", "f1", "roc_auc", "ap"}
    assert metrics["padding_share"] < 0.5  # grouped, dynamically padded batches


def test_reporter_stops_training(tmp_path):
    recorder = Recorder(stop_after=1)
    result = train_and_evaluate(_config(tmp_path), recorder)
    assert len(recorder.epochs) == 1 and result.stopped_early


def test_keeps_the_best_epochs_weights(tmp_path):
    """Best is the worst validation loss here, so epoch 1: the kept weights must be those after
    epoch 1 (a run stopped there on the same schedule), not the last epoch's."""
    config = _config(tmp_path).model_copy(update={"monitor": "val_loss"})
    result = train_and_evaluate(config, Recorder(), keep_model=True)
    losses = [m["val_loss"] for m in result.history]
    assert (
        result.best_epoch == 1 and losses[0] == max(losses) and losses[-1] < losses[0]
    )  # the weights moved after epoch 1
    stop_after_1 = config.model_copy(
        update={"hyper": config.hyper.model_copy(update={"stop_after_epochs": 1})}
    )
    epoch_1 = train_and_evaluate(stop_after_1, keep_model=True).model.state_dict()
    kept = result.model.state_dict()
    assert kept.keys() == epoch_1.keys()
    for name, weights in epoch_1.items():
        torch.testing.assert_close(kept[name].cpu(), weights.cpu(), msg=name)
    assert result.val_probs.shape == (120, 2)


def test_output_bias_starts_at_the_label_prior(tmp_path):
    from trainers.model import build_classifier, output_layer

    labels = np.array([[1, 0], [0, 0], [0, 0], [0, 1]], dtype=np.float32)
    model = build_classifier(
        ModelConfig(from_config=tiny_architecture()), "multi_label", ("a", "b"), labels
    )
    bias = output_layer(model, 2).bias.detach().numpy()
    assert np.allclose(bias, np.log(0.25 / 0.75), atol=1e-5)


def test_stopping_after_an_epoch_keeps_the_full_runs_schedule_and_weights(tmp_path):
    """Retraining a trial up to its best epoch must give the model the trial scored there."""
    full = train_and_evaluate(_config(tmp_path, epochs=3))
    stopped = train_and_evaluate(_config(tmp_path, epochs=3, stop_after_epochs=1))
    squeezed = train_and_evaluate(_config(tmp_path, epochs=1))
    assert len(full.history) == 3 and len(stopped.history) == 1
    first = full.history[0]
    assert first["learning_rate_end"] > 0
    assert stopped.history[0]["learning_rate_end"] == pytest.approx(first["learning_rate_end"])
    assert stopped.history[0]["macro_roc_auc"] == pytest.approx(first["macro_roc_auc"])
    assert stopped.history[0]["val_loss"] == pytest.approx(first["val_loss"])
    assert (
        squeezed.history[0]["learning_rate_end"] == 0
    )  # a one-epoch schedule decays to zero: another model
