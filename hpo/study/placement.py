"""Several trials on one GPU, admitted by measured memory.

Each trial reports the device memory it reserved after its first steps. Under the study lock, a
worker pinned to a GPU starts another trial there only while the trials already running on it
have all been measured and their peaks plus the largest peak seen in the study still fit the
GPU's memory with a margin. A trial that still runs out of memory beside others is queued again
to run alone. The rule is plain code over declared numbers, so it is tested without a GPU.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import stored

CAPACITY_ENV = "HPO_GPU_MEMORY_MB"  # set by `hpo workers --per-gpu auto` on each worker
MARGIN_ENV = "HPO_GPU_MEMORY_MARGIN"
DEFAULT_MARGIN = 0.1
CONTEXT_MB = 512.0  # a CUDA context, outside the allocator's reservation, per process


@dataclass(frozen=True)
class GpuTrial:
    """A trial running on this worker's GPU: its measured peak (None until measured)."""

    number: int
    peak_mb: float | None
    alone: bool = False


@dataclass(frozen=True)
class Gpu:
    """The device this worker starts trials on, and how much of it trials may fill."""

    host: str
    device: str
    capacity_mb: float
    margin: float = DEFAULT_MARGIN

    @property
    def usable_mb(self) -> float:
        return self.capacity_mb * (1 - self.margin)

    @classmethod
    def from_env(cls) -> Gpu | None:
        """This worker's GPU when packing is on (capacity declared), else None."""
        capacity, device = os.environ.get(CAPACITY_ENV), os.environ.get("CUDA_VISIBLE_DEVICES")
        if not capacity or not device:
            return None
        margin = float(os.environ.get(MARGIN_ENV) or DEFAULT_MARGIN)
        return cls(socket.gethostname(), device, float(capacity), margin)


def admits(
    gpu: Gpu, running: list[GpuTrial], expected_peak_mb: float | None, next_alone: bool = False
) -> bool:
    """May one more trial start on `gpu` beside `running`? An empty GPU always takes one."""
    if not running:
        return True
    if next_alone or any(t.alone for t in running):
        return False
    if expected_peak_mb is None or any(t.peak_mb is None for t in running):
        return False  # not measured yet: wait rather than guess
    used = sum(t.peak_mb + CONTEXT_MB for t in running)  # type: ignore[operator]  # all measured above
    return used + expected_peak_mb + CONTEXT_MB <= gpu.usable_mb


def expected_peak(trials: list[FrozenTrial]) -> float | None:
    """The largest peak measured in the study so far: the next trial's settings may be its."""
    peaks = [
        float(t.user_attrs[stored.PEAK_MEMORY_MB])
        for t in trials
        if stored.PEAK_MEMORY_MB in t.user_attrs
    ]
    return max(peaks) if peaks else None


def running_on(gpu: Gpu, trials: list[FrozenTrial]) -> list[GpuTrial]:
    """The study's running trials on this host's `gpu.device`."""
    return [
        GpuTrial(
            t.number,
            t.user_attrs.get(stored.PEAK_MEMORY_MB),
            bool(t.user_attrs.get(stored.RUN_ALONE)),
        )
        for t in trials
        if t.state == TrialState.RUNNING
        and t.user_attrs.get(stored.GPU) == gpu.device
        and _host(t) == gpu.host
    ]


def next_queued_alone(trials: list[FrozenTrial]) -> bool:
    """Is the queued trial that the next `ask` pops one that must run alone?"""
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    return bool(waiting) and bool(
        min(waiting, key=lambda t: t.number).user_attrs.get(stored.RUN_ALONE)
    )


def _host(trial: FrozenTrial) -> str:
    return str(trial.user_attrs.get(stored.WORKER, "")).rsplit(":", 1)[0]


def requeue_alone_after_oom(study: optuna.Study, trial: FrozenTrial) -> None:
    """A study callback: a trial packed beside others that ran out of device memory is queued
    again with the same parameters, to run on a GPU of its own (once: alone, running out of
    memory is the trial's own doing)."""
    if (
        trial.state != TrialState.FAIL
        or Gpu.from_env() is None
        or trial.user_attrs.get(stored.RUN_ALONE)
    ):
        return
    if str(trial.user_attrs.get(stored.FAIL_REASON, "")).startswith("out of memory"):
        study.enqueue_trial(
            trial.params, user_attrs={stored.RUN_ALONE: True}, skip_if_exists=False
        )
