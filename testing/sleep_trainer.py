"""A trainer that sleeps instead of training, for measuring and testing the service itself.

Same contract as trainers.loop.train_and_evaluate (spec field `trainer:
testing.sleep_trainer:train`): each epoch sleeps SLEEP_EPOCH_S seconds (default 2; the
environment of the runner that starts the trial processes), then reports a value that depends on
the learning rate and the epoch, so samplers and pruners have something to work with. It imports
no torch, so a trial costs the service's overhead and the sleep, nothing else. With SLEEP_PEAK_MB
set it reports that much device memory before its first epoch, as a CUDA run does after its
first steps, so GPU packing can be tested without a GPU. With SLEEP_BARRIER set to a path, a
trial starts sleeping only once that file exists: the scaling benchmark starts all its workers'
first trials together.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

from trainers.config import TrainConfig
from trainers.reporting import Reporter, Resources, report_resources

DEFAULT_EPOCH_S = 2.0


@dataclass(frozen=True)
class SleepResult:
    best_epoch: int
    best_value: float
    stopped_early: bool


def score(learning_rate: float, epoch: int) -> float:
    """Best at learning rate 1e-3, better each epoch, in (0, 1)."""
    return (1 - 0.5**epoch) / (1 + abs(math.log10(learning_rate) + 3))


def train(config: TrainConfig, reporter: Reporter) -> SleepResult:
    seconds = float(os.environ.get("SLEEP_EPOCH_S", DEFAULT_EPOCH_S))
    barrier = os.environ.get("SLEEP_BARRIER")
    while barrier and not Path(barrier).exists():
        time.sleep(0.1)
    sign = 1 if config.monitor_mode == "max" else -1
    best_epoch, best_value = 0, -math.inf * sign
    if os.environ.get("SLEEP_PEAK_MB"):
        report_resources(
            reporter, Resources(peak_device_memory_mb=float(os.environ["SLEEP_PEAK_MB"]))
        )
    for epoch in range(1, config.hyper.epochs + 1):
        time.sleep(seconds)
        value = sign * score(config.hyper.learning_rate, epoch)
        if sign * (value - best_value) > 0:
            best_epoch, best_value = epoch, value
        metrics = {
            config.monitor: value,
            "monitor_value": value,
            "epoch": epoch,
            "pid": os.getpid(),
        }
        if reporter.report(epoch, metrics):
            return SleepResult(best_epoch, best_value, stopped_early=True)
    return SleepResult(best_epoch, best_value, stopped_early=False)
