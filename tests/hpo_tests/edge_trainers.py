"""Trainers for the edge tests (spec field `trainer`): no torch, a trial in well under a second.

`steady` reports one epoch and finishes; `fails_above_1e3` raises when the learning rate is
above 1e-3, as a real training crash would; `never_finite` scores NaN; `slow` sleeps EDGE_EPOCH_S seconds per epoch, so a
test can interrupt a trial in the middle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from trainers.config import TrainConfig
from trainers.reporting import Reporter


@dataclass(frozen=True)
class Result:
    best_epoch: int
    best_value: float
    stopped_early: bool = False


def steady(config: TrainConfig, reporter: Reporter) -> Result:
    value = min(0.9, config.hyper.learning_rate * 100)
    reporter.report(1, {config.monitor: value, "monitor_value": value, "epoch": 1})
    return Result(1, value)


def fails_above_1e3(config: TrainConfig, reporter: Reporter) -> Result:
    if config.hyper.learning_rate > 1e-3:
        raise RuntimeError("diverged: the learning rate is too high")
    return steady(config, reporter)


def never_finite(config: TrainConfig, reporter: Reporter) -> Result:
    reporter.report(1, {config.monitor: float("nan"), "monitor_value": float("nan"), "epoch": 1})
    return Result(1, float("nan"))


def slow(config: TrainConfig, reporter: Reporter) -> Result:
    for epoch in range(1, config.hyper.epochs + 1):
        time.sleep(float(os.environ.get("EDGE_EPOCH_S", "0.5")))
        if reporter.report(
            epoch, {config.monitor: 0.5, "monitor_value": 0.5, "epoch": epoch, "pid": os.getpid()}
        ):
            return Result(epoch, 0.5, stopped_early=True)
    return Result(config.hyper.epochs, 0.5)
