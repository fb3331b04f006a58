"""A trial's training process, forked from the forkserver, leaves on its own once it has sent its
outcome: its exit handlers run (they unlink the semaphores its libraries made), and only a
runner interrupted mid-trial has to stop it with a signal."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo.trial.process import run_trial_process
from testing.specs import tiny_train_config
from trainers.config import DataConfig


def _config(tmp_path: Path, learning_rate: float):
    data = DataConfig(train_path=tmp_path / "train.csv", val_path=tmp_path / "val.csv",
                      text_column="text", label_columns=("a",))  # fmt: skip
    return tiny_train_config(data, epochs=3, learning_rate=learning_rate)


@pytest.mark.parametrize(
    ("trainer", "learning_rate", "stop_at", "status"),
    [
        ("tests.hpo_tests.instant_trainers:instant", 1e-3, None, "finished"),
        ("tests.hpo_tests.instant_trainers:instant", 1e-3, 1, "stopped"),
        ("testing.fault_trainers:raise_when_lr_above_1", 5.0, None, "failed"),
    ],
)
def test_a_trial_process_that_has_reported_exits_by_itself(
    tmp_path: Path, trainer: str, learning_rate: float, stop_at: int | None, status: str
) -> None:
    epochs: list[int] = []

    def on_epoch(epoch: int, metrics: dict) -> bool:
        epochs.append(epoch)
        return epoch == stop_at

    outcome = run_trial_process(_config(tmp_path, learning_rate), on_epoch, trainer=trainer)
    assert outcome.status == status
    assert epochs == {"finished": [1, 2, 3], "stopped": [1], "failed": []}[status]
    assert outcome.exit_code == 0  # not -15: no SIGTERM cut its exit handlers short
