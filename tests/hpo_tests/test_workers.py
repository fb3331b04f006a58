"""Several worker processes on one study, against a real PostgreSQL server and a SQLite file."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from hpo.errors import HpoError
from hpo.spec import load_spec
from hpo.study import n_finished, open_study
from hpo.study.workers import wait_workers, worker_envs
from hpo.trial import load_trainer
from testing.data import RealData
from testing.specs import sleep_spec, tiny_ucc_spec
from testing.workers import run_hpo, start_study_workers, states, stop_all


def test_workers_share_a_study_and_finish_exactly_n_trials(
    storage_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.1")
    spec = sleep_spec(tmp_path, n_trials=12, pruner={"type": "median", "n_startup_trials": 4})
    study, procs = start_study_workers(spec, storage_url, n_workers=3)
    try:
        # The URL (and its password) travels in the environment, never on a command line.
        assert all(storage_url not in " ".join(p.args) for p in procs)
        assert wait_workers(procs) == 0
    finally:
        stop_all(procs)

    trials = study.get_trials(deepcopy=False)
    counts = states(study)
    assert counts["COMPLETE"] + counts["PRUNED"] == 12
    assert set(counts) <= {
        "COMPLETE",
        "PRUNED",
    }  # no extra trial, none failed (no "database is locked")
    assert len({t.user_attrs["worker"] for t in trials}) >= 2
    # Each worker reseeds its sampler: the same seed everywhere would repeat the same suggestions.
    assert len({t.params["learning_rate"] for t in trials}) == 12


def test_grid_study_runs_every_point_exactly_once(
    storage_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.05")
    grid = {"learning_rate": [1e-4, 3e-4, 1e-3], "batch_size": [8, 16, 32]}
    space = {name: {"type": "categorical", "choices": choices} for name, choices in grid.items()}
    spec = sleep_spec(tmp_path, n_trials=9, sampler={"type": "grid"}, search_space=space)
    study, procs = start_study_workers(spec, storage_url, n_workers=3)
    try:
        assert wait_workers(procs) == 0
    finally:
        stop_all(procs)

    points = sorted((t.params["learning_rate"], t.params["batch_size"]) for t in study.trials)
    assert points == sorted(itertools.product(*grid.values()))  # 9 trials, 9 different points
    assert states(study) == {"COMPLETE": 9}


@pytest.mark.postgres
def test_hpo_workers_trains_tiny_models_in_two_processes(
    postgres, tmp_path: Path, real_data: RealData
) -> None:
    """The whole `hpo workers` path with real training; a NaN-loss trial fails with its reason."""
    data = real_data.slice(
        tmp_path / "data", "ucc", {"train": 48, "val": 48, "test": 8}
    )  # every label has a val positive
    path = tiny_ucc_spec(
        tmp_path / "tiny.yaml",
        name=f"tiny-{os.getpid()}",
        n_trials=2,
        search_space={"learning_rate": {"type": "float", "low": 1e-4, "high": 1e31, "log": True}},
        training={"epochs": 1, "batch_size": 16},
    )
    study = open_study(load_spec(str(path)), postgres.url)
    for lr in (1e30, 1e-3, 3e-3):  # queued: the NaN one first, then the two the study needs
        study.enqueue_trial({"learning_rate": lr})

    run = run_hpo(
        "workers", str(path), "-n", "2", "--data-dir", str(data), HPO_STORAGE=postgres.url
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert postgres.password not in run.stdout + run.stderr  # logs show redacted URLs only

    trials = {t.params["learning_rate"]: t for t in study.trials}
    assert sorted(trials) == [1e-3, 3e-3, 1e30] and n_finished(study) == 2
    assert trials[1e30].state.name == "FAIL"
    assert "NonFiniteLossError" in trials[1e30].user_attrs["fail_reason"]
    complete = [trials[1e-3], trials[3e-3]]
    assert all(t.state.name == "COMPLETE" and "epoch_001" in t.user_attrs for t in complete)
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2


def test_worker_placement_pins_gpus_or_splits_cpu_threads() -> None:
    pinned = worker_envs(3, gpus=["0", "1"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in pinned] == ["0", "1", "0"]
    assert [e["HPO_WORKER"] for e in pinned] == ["w0", "w1", "w2"]
    shared = worker_envs(4, cpus=16)
    assert {e["OMP_NUM_THREADS"] for e in shared} == {"4"} and not any(
        "CUDA_VISIBLE_DEVICES" in e for e in shared
    )
    assert worker_envs(4, cpus=2)[0]["OMP_NUM_THREADS"] == "1"


def test_a_trainer_that_cannot_be_imported_is_one_line_before_any_trial() -> None:
    with pytest.raises(HpoError, match="trainer 'no_such_module:train' cannot be loaded"):
        load_trainer("no_such_module:train")
    assert (
        load_trainer("testing.sleep_trainer:train").__name__ == "train"
    )  # found from the repo root
