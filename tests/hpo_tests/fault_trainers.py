"""A trainer for the fault tests (spec field `trainer`): dies the way the kernel's OOM killer
kills a process when the learning rate is above 1, finishes at once otherwise."""

from __future__ import annotations

import os
import signal

from benchmarks.sleep_trainer import SleepResult, score
from trainers.config import TrainConfig
from trainers.reporting import Reporter


def oom_when_lr_above_1(config: TrainConfig, reporter: Reporter) -> SleepResult:
    value = score(config.hyper.learning_rate, 1)
    reporter.report(1, {config.monitor: value, "monitor_value": value, "epoch": 1})
    if config.hyper.learning_rate > 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return SleepResult(best_epoch=1, best_value=value, stopped_early=False)
