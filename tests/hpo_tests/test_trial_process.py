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


def test_a_trial_process_sees_the_runners_environment_as_it_is_when_the_trial_starts(
    tmp_path: Path, monkeypatch
) -> None:
    """The forkserver's environment dates from the first trial; each later trial gets the
    runner's current one, variables added and removed alike."""
    trainer = "tests.hpo_tests.instant_trainers:reports_its_environment"
    seen: list[float] = []

    def record(epoch: int, metrics: dict) -> bool:
        seen.append(metrics["monitor_value"])
        return False

    monkeypatch.setenv("HPO_TEST_VALUE", "1")
    run_trial_process(_config(tmp_path, 1e-3), record, trainer=trainer)  # starts the forkserver
    monkeypatch.setenv("HPO_TEST_VALUE", "2")
    run_trial_process(_config(tmp_path, 1e-3), record, trainer=trainer)
    monkeypatch.delenv("HPO_TEST_VALUE")
    run_trial_process(_config(tmp_path, 1e-3), record, trainer=trainer)
    assert seen == [1.0, 2.0, -1.0]
