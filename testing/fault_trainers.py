"""Trainers that fail on purpose (spec field `trainer: testing.fault_trainers:<name>`), each in
one way a real run fails, when the trial's learning rate is above 1.

They fail the same on every machine (a CUDA device or none), which a real setting that breaks
only somewhere (fp16 without CUDA, say) cannot promise. Below a learning rate of 1 they report
one epoch of testing.sleep_trainer's value and finish, except `raise_when_lr_above_1`, which
then trains for real.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from testing.sleep_trainer import SleepResult, score
from trainers.config import TrainConfig
from trainers.reporting import Reporter


class InjectedFault(RuntimeError):
    """The error `raise_when_lr_above_1` raises: a bug in the training code, say."""


def oom_when_lr_above_1(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """The training process dies as the kernel's OOM killer kills it (SIGKILL), after one epoch."""
    result = _one_epoch(config, reporter)
    if config.hyper.learning_rate > 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def worker_killed_when_lr_above_1(config: TrainConfig, reporter: Reporter) -> SleepResult:
    """The worker running the trial dies by SIGKILL after one epoch, as on a lost machine: the
    trial stays RUNNING until another worker finds its heartbeat stale."""
    result = _one_epoch(config, reporter)
    if config.hyper.learning_rate > 1:
        os.kill(_worker_pid(), signal.SIGKILL)
    return result


def raise_when_lr_above_1(config: TrainConfig, reporter: Reporter):
    """An exception before the first epoch; otherwise trainers.loop trains the model."""
    if config.hyper.learning_rate > 1:
        raise InjectedFault(f"injected fault at learning rate {config.hyper.learning_rate:g}")
    from trainers.loop import train_and_evaluate

    return train_and_evaluate(config, reporter)


def _one_epoch(config: TrainConfig, reporter: Reporter) -> SleepResult:
    value = score(config.hyper.learning_rate, 1)
    reporter.report(
        1, {config.monitor: value, "monitor_value": value, "epoch": 1, "pid": os.getpid()}
    )
    return SleepResult(best_epoch=1, best_value=value, stopped_early=False)


def _worker_pid() -> int:
    """A trial process is forked by the forkserver its worker started: the worker is the
    forkserver's parent. Outside a worker started as `hpo workers` starts them (in a test's own
    process, say) the trainer raises rather than kill a stranger."""
    forkserver = os.getppid()
    if (
        not os.environ.get("HPO_WORKER")
        or b"forkserver" not in Path(f"/proc/{forkserver}/cmdline").read_bytes()
    ):
        raise InjectedFault(
            "worker_killed_when_lr_above_1 kills only a worker process (HPO_WORKER set)"
        )
    stat = Path(f"/proc/{forkserver}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])
