"""The trainer measures device memory after its first steps, for packing trials on a GPU."""

from __future__ import annotations

import pytest
import torch

from testing.specs import learnable_config as _config
from trainers.loop import MEASURE_AFTER_STEPS, prepare, train_and_evaluate, train_epoch
from trainers.reporting import Resources


class _Recorder:
    def __init__(self) -> None:
        self.resources: list[Resources] = []

    def report(self, epoch, metrics) -> bool:
        return False

    def report_resources(self, resources: Resources) -> None:
        self.resources.append(resources)


def test_the_first_steps_hook_runs_once_after_the_first_steps(tmp_path):
    run = prepare(_config(tmp_path, epochs=1))
    order = run.epoch_batches()
    calls: list[int] = []
    train_epoch(run, order, 1, after_first_steps=lambda: calls.append(len(calls)))
    assert calls == [0] and len(order) > MEASURE_AFTER_STEPS


def test_resources_are_reported_on_cuda_only(tmp_path):
    recorder = _Recorder()
    train_and_evaluate(_config(tmp_path, epochs=2), recorder)
    if torch.cuda.is_available():
        assert len(recorder.resources) == 1 and recorder.resources[0].peak_device_memory_mb > 0
    else:
        assert recorder.resources == []  # host memory is not what GPU packing shares


@pytest.mark.skipif(not torch.cuda.is_available(), reason="measures CUDA memory")
def test_reported_peak_matches_the_allocator(tmp_path):
    recorder = _Recorder()
    train_and_evaluate(_config(tmp_path, epochs=1).model_copy(update={"device": "cuda"}), recorder)
    assert (
        recorder.resources[0].peak_device_memory_mb <= torch.cuda.max_memory_reserved() / 2**20 + 1
    )
