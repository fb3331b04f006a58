"""Helpers for the worker and fault tests: quick specs, worker processes, waiting on a study."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import FrozenTrial, TrialState

from hpo.study import open_study
from hpo.spec import load_spec
from hpo.study.workers import start_workers, worker_envs

HEARTBEAT_S = 1  # stale after 2 s: a killed worker's trial is retried within seconds
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def sleep_spec(folder: Path, **overrides) -> Path:
    """A spec whose trials run benchmarks.sleep_trainer (SLEEP_EPOCH_S per epoch, 3 epochs)."""
    spec = {
        "name": f"w-{uuid.uuid4().hex[:8]}",  # the PostgreSQL database is shared by all tests
        "task": "multi_label",
        "data": {"dir": "unused", "text_column": "text", "label_columns": ["a", "b"]},
        "training": {"epochs": 3},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        "sampler": {"type": "random"},
        "pruner": {"type": "none"},
        "trainer": "benchmarks.sleep_trainer:train",
        **overrides,
    }
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def create_and_start(spec_path: Path, url: str, n_workers: int, envs: list[dict[str, str]] | None = None) -> tuple[optuna.Study, list[subprocess.Popen]]:
    """Create the study here (as `hpo workers` does), then start `hpo study --join` workers
    (with `envs`, one per worker, instead of an equal share of the CPU each)."""
    study = open_study(load_spec(str(spec_path)), url, heartbeat_interval=HEARTBEAT_S)
    procs = start_workers(spec_path, envs or worker_envs(n_workers), storage=url, data_dir=spec_path.parent, heartbeat=HEARTBEAT_S)
    return study, procs


def states(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def n_finished(study: optuna.Study) -> int:
    return sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))


def wait_until(condition: Callable[[], object], timeout_s: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def mid_trial(study: optuna.Study, procs: list[subprocess.Popen]) -> tuple[FrozenTrial, subprocess.Popen] | None:
    """A running trial that has reported an epoch, and the live worker running it."""
    by_pid = {p.pid: p for p in procs if p.poll() is None}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = worker_pid(trial)
        if "epoch_001" in trial.user_attrs and pid in by_pid:
            return trial, by_pid[pid]
    return None


def worker_pid(trial: FrozenTrial) -> int:
    return int(str(trial.user_attrs.get("worker", ":0")).rsplit(":", 1)[1])


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Teardown: no worker outlives its test."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie (dead, not yet reaped by its parent) is gone too
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
