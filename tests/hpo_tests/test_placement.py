"""Packing trials on one GPU by measured memory: the admission rule on declared numbers, the
re-queue of a packed trial that ran out of memory, and real workers sharing a declared GPU."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo import stored
from hpo.errors import HpoError
from hpo.report import summarize
from hpo.spec import load_spec
from hpo.study import placement
from hpo.study.placement import CONTEXT_MB, Gpu, GpuTrial, admits, requeue_alone_after_oom
from hpo.study.workers import gpu_memory, wait_workers, worker_envs, workers_per_gpu
from testing.specs import sleep_spec
from testing.workers import most_at_once, start_study_workers, stop_all

GPU = Gpu(host="h", device="0", capacity_mb=10_000, margin=0.1)  # 9,000 MB usable


def test_an_empty_gpu_takes_a_trial_before_anything_is_measured():
    assert admits(GPU, [], expected_peak_mb=None)


def test_a_trial_joins_only_while_the_measured_peaks_fit_with_the_margin():
    peak = 2_000
    running = [GpuTrial(0, peak), GpuTrial(1, peak)]
    assert admits(GPU, running, expected_peak_mb=peak)  # 3 × (2,000 + context) = 7,536 ≤ 9,000
    running.append(GpuTrial(2, peak))
    assert 4 * (peak + CONTEXT_MB) > GPU.usable_mb
    assert not admits(GPU, running, expected_peak_mb=peak)


def test_unmeasured_or_alone_trials_keep_the_gpu_to_themselves():
    assert not admits(GPU, [GpuTrial(0, None)], expected_peak_mb=100)  # still measuring
    assert not admits(GPU, [GpuTrial(0, 100)], expected_peak_mb=None)  # nothing to go by
    assert not admits(GPU, [GpuTrial(0, 100, alone=True)], expected_peak_mb=100)
    assert not admits(GPU, [GpuTrial(0, 100)], expected_peak_mb=100, next_alone=True)


def _failed(study: optuna.Study, reason: str, **attrs) -> optuna.trial.FrozenTrial:
    dist = {"learning_rate": FloatDistribution(1e-5, 1e-1, log=True)}
    study.add_trial(create_trial(state=TrialState.FAIL, params={"learning_rate": 1e-3}, distributions=dist,
                                 user_attrs={stored.FAIL_REASON: reason, **attrs}))  # fmt: skip
    return study.get_trials(deepcopy=False)[-1]


def test_a_packed_trial_out_of_memory_is_queued_again_to_run_alone(monkeypatch):
    monkeypatch.setenv(placement.CAPACITY_ENV, "10000")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    study = optuna.create_study()
    requeue_alone_after_oom(
        study, _failed(study, "out of memory: CUDA out of memory. Tried to allocate 2.00 GiB")
    )
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs[stored.RUN_ALONE] is True
    assert placement.next_queued_alone(study.get_trials(deepcopy=False))
    # Alone, running out of memory is the trial's own: it is not queued a second time; nor is
    # another failure.
    requeue_alone_after_oom(
        study, _failed(study, "out of memory: again", **{stored.RUN_ALONE: True})
    )
    requeue_alone_after_oom(study, _failed(study, "NonFiniteLossError: loss became nan"))
    assert len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) == 1


def test_without_packing_an_out_of_memory_trial_is_not_requeued(monkeypatch):
    monkeypatch.delenv(placement.CAPACITY_ENV, raising=False)
    study = optuna.create_study()
    requeue_alone_after_oom(study, _failed(study, "out of memory: CUDA out of memory"))
    assert not study.get_trials(deepcopy=False, states=(TrialState.WAITING,))


def test_per_gpu_settings_are_checked():
    assert workers_per_gpu("auto") == (placement_max(), True)
    assert workers_per_gpu("3") == (3, False)
    assert workers_per_gpu(None) == (1, False)
    for bad in ("0", "-1", "two"):
        with pytest.raises(HpoError, match="--per-gpu"):
            workers_per_gpu(bad)
    assert gpu_memory(["0", "1"], 80_000) == {"0": 80_000.0, "1": 80_000.0}
    envs = worker_envs(4, ["0", "1"], gpu_memory_mb={"0": 1000.0, "1": 2000.0})
    assert [(e["CUDA_VISIBLE_DEVICES"], e[placement.CAPACITY_ENV]) for e in envs] == [
        ("0", "1000.0"),
        ("1", "2000.0"),
    ] * 2


def placement_max() -> int:
    from hpo.study.workers import AUTO_MAX_PER_GPU

    return AUTO_MAX_PER_GPU


def test_workers_on_a_declared_gpu_run_only_as_many_trials_as_fit(tmp_path: Path, monkeypatch):
    """Four workers on one "GPU" of 4,000 MB: trials of 1,000 MB (+ a CUDA context each) fit two
    at a time with the margin, so two train together and never three."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.5")
    monkeypatch.setenv("SLEEP_PEAK_MB", "1000")
    spec = sleep_spec(tmp_path, n_trials=6)
    envs = worker_envs(4, ["0"], gpu_memory_mb={"0": 4000.0})
    study, procs = start_study_workers(
        spec, f"sqlite:///{tmp_path}/optuna.db", n_workers=4, envs=envs
    )
    try:
        assert wait_workers(procs) == 0
    finally:
        stop_all(procs)
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert all(
        t.user_attrs[stored.PEAK_MEMORY_MB] == 1000 and t.user_attrs[stored.GPU] == "0"
        for t in trials
    )
    assert most_at_once(trials) == 2
    devices = summarize(study, load_spec(str(spec))).table("devices").set_index("trial")
    assert set(devices["gpu"]) == {"0"} and (devices["peak_device_memory_mb"] == 1000).all()
    shared = {n: set(map(int, w.split())) for n, w in devices["shared_with"].items() if w}
    assert shared and all(
        n in shared[m] for n, others in shared.items() for m in others
    )  # symmetric
