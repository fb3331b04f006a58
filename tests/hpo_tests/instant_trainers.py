"""Trainers for sampler, pruner and feasibility tests run in-process (spec field `trainer`):
no sleep, so a trial costs only the service's own work."""

from __future__ import annotations

import os

from testing.sleep_trainer import SleepResult, score
from trainers.config import TrainConfig
from trainers.reporting import Reporter


def instant(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """The sleep trainer's curve (best at learning rate 1e-3, better every epoch), at once."""
    best = 0.0
    for epoch in range(1, config.hyper.epochs + 1):
        best = score(config.hyper.learning_rate, epoch)
        if reporter.report(epoch, {config.monitor: best, "monitor_value": best, "epoch": epoch}):
            return SleepResult(epoch, best, stopped_early=True)
    return SleepResult(config.hyper.epochs, best, stopped_early=False)


def oom_at_batch_64(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """Runs out of memory the way torch says it at batch size 64; larger batches score better
    below that, so a sampler that ignores the failures keeps proposing 64."""
    if config.hyper.batch_size >= 64:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    value = score(config.hyper.learning_rate, 1) * config.hyper.batch_size / 32
    reporter.report(1, {config.monitor: value, "monitor_value": value, "epoch": 1})
    return SleepResult(1, value, stopped_early=False)


def crash_at_batch_64(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """The same, with a failure that is not about memory: the trial stays FAIL."""
    if config.hyper.batch_size >= 64:
        raise RuntimeError("some bug")
    return oom_at_batch_64(config, reporter)


def lucky_seed_1(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """One epoch of the sleep trainer's curve, 0.3 higher for seed 1 alone: a lucky search run."""
    value = score(config.hyper.learning_rate, 1) + (0.3 if config.hyper.seed == 1 else 0.0)
    reporter.report(1, {config.monitor: value, "monitor_value": value, "epoch": 1})
    return SleepResult(1, value, stopped_early=False)


def reports_its_environment(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """One epoch whose value is $HPO_TEST_VALUE, or -1 when the trial's process lacks it."""
    value = float(os.environ.get("HPO_TEST_VALUE", "-1"))
    reporter.report(1, {config.monitor: value, "monitor_value": value, "epoch": 1})
    return SleepResult(1, value, stopped_early=False)
