"""Worker processes on a study, as `hpo workers` starts them, and what a test or a benchmark
waits for and looks at while they run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from hpo import stored
from hpo.spec import load_spec
from hpo.study import open_study
from hpo.study.workers import start_workers, worker_envs
from testing.data import REPO

HEARTBEAT_S = 1  # stale after 2 s: a killed worker's trial is retried within seconds
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
T = TypeVar("T")


def start_study_workers(
    spec_path: Path,
    url: str,
    n_workers: int,
    heartbeat: int = HEARTBEAT_S,
    envs: list[dict[str, str]] | None = None,
) -> tuple[optuna.Study, list[subprocess.Popen]]:
    """Create the study here (as `hpo workers` does), then start `hpo study --join` workers
    (with `envs`, one per worker, instead of an equal share of the CPU each)."""
    study = open_study(load_spec(str(spec_path)), url, heartbeat_interval=heartbeat)
    procs = start_workers(
        spec_path,
        envs or worker_envs(n_workers),
        storage=url,
        data_dir=spec_path.parent,
        heartbeat=heartbeat,
    )
    return study, procs


def hpo_env(**extra: str) -> dict[str, str]:
    """This environment, with the checkout first on PYTHONPATH: an `hpo` process started in
    another directory runs this checkout's code and finds the `testing` trainers."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def hpo_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hpo", *args]


def run_hpo(
    *args: str, cwd: Path = REPO, timeout_s: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """`hpo ARGS` in a process of its own, to its exit; its output captured."""
    return subprocess.run(
        hpo_command(*args),
        cwd=cwd,
        env=hpo_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def interruptible() -> None:
    """A `preexec_fn` that gives the child the default SIGINT. A shell starts background jobs
    with SIGINT ignored and Python keeps an ignored SIGINT, so a suite run in the background
    would otherwise send an interrupt that the `hpo` it tests never sees."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def hpo_in_background(
    *args: str, log: Path, cwd: Path = REPO, **env: str
) -> Iterator[subprocess.Popen[str]]:
    """`hpo ARGS` started, its output going to `log`. Still running at the end of the block, it
    is sent SIGTERM, which `hpo` takes as Ctrl-C (a `hpo workers` stops its workers), then killed."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            hpo_command(*args),
            cwd=cwd,
            env=hpo_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=interruptible,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def states(study: optuna.Study) -> Counter[str]:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def wait_until(condition: Callable[[], T], timeout_s: float = 60, what: str = "condition") -> T:
    """Poll `condition` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def mid_trial(
    study: optuna.Study, procs: list[subprocess.Popen]
) -> tuple[FrozenTrial, subprocess.Popen] | None:
    """A running trial that has reported an epoch, and the live worker running it."""
    by_pid = {p.pid: p for p in procs if p.poll() is None}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = worker_pid(trial)
        if stored.epoch_key(1) in trial.user_attrs and pid in by_pid:
            return trial, by_pid[pid]
    return None


def wait_mid_trial(
    study: optuna.Study, procs: list[subprocess.Popen]
) -> tuple[FrozenTrial, subprocess.Popen]:
    """Wait for a trial in its second epoch; returns it and the worker running it."""
    return wait_until(lambda: mid_trial(study, procs), what="a trial in its second epoch")


def kill_mid_trial(study: optuna.Study, procs: list[subprocess.Popen]) -> FrozenTrial:
    """SIGKILL the worker of a trial in its second epoch and wait for the other workers, which
    must end the study; returns the trial as it was when its worker died."""
    trial, victim = wait_mid_trial(study, procs)
    victim.send_signal(signal.SIGKILL)
    assert [p.wait() for p in procs if p is not victim] == [0] * (len(procs) - 1)
    return trial


def worker_pid(trial: FrozenTrial) -> int:
    return int(str(trial.user_attrs.get(stored.WORKER, ":0")).rsplit(":", 1)[1])


def retries_of(trials: list[FrozenTrial], number: int) -> list[FrozenTrial]:
    """The trials that retry trial `number` (directly or as a retry of one of its retries)."""
    with warnings.catch_warnings():  # retry_history is "experimental" since Optuna 3.0
        warnings.simplefilter("ignore", ExperimentalWarning)
        return [t for t in trials if number in RetryHeartbeatStaleTrialCallback.retry_history(t)]


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


def most_at_once(trials: list[FrozenTrial]) -> int:
    """The most of these finished trials that ran at the same time (from their start and end)."""
    events = sorted(
        [(t.datetime_start, 1) for t in trials] + [(t.datetime_complete, -1) for t in trials],
        key=lambda e: (e[0], e[1]),
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak
