"""Trainers for the MLflow tests (spec field `trainer`): `sleep`, the sleep trainer, and
`fail_first`, the same except that the first trial of a study fails after its first epoch (a
marker file, FAIL_ONCE_MARKER, remembers across trial processes that it has)."""

from __future__ import annotations

import os
from pathlib import Path

from testing.sleep_trainer import train as sleep
from trainers.config import TrainConfig
from trainers.reporting import Reporter


def fail_first(config: TrainConfig, reporter: Reporter):
    marker = Path(os.environ["FAIL_ONCE_MARKER"])
    if not marker.exists():
        marker.touch()
        reporter.report(1, {config.monitor: 0.1, "monitor_value": 0.1, "epoch": 1})
        raise RuntimeError("deliberate failure of the first trial")
    return sleep(config, reporter)
