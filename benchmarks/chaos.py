"""Chaos run: workers killed with SIGKILL in the middle of a study, which must still end right.

A 40-trial study of the sleep trainer runs on 8 workers against a throwaway PostgreSQL server and
on 4 workers against a SQLite file; twice during each run a worker is killed with SIGKILL while
its trial is mid-epoch. Passing means: exactly n_trials finished (COMPLETE or PRUNED) trials, no
trial left RUNNING, and every killed trial FAIL with a finished retry of the same parameters.

    python -m benchmarks.chaos [--quick] [--backends postgresql,sqlite]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from hpo.study import open_study
from hpo.spec import load_spec
from hpo.study.workers import start_workers, wait_workers, worker_envs

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
HEARTBEAT_S = 1  # a killed worker's trial is failed and re-queued ~2 s after its last beat


@dataclass
class Outcome:
    backend: str
    workers: int
    states: Counter
    killed: list[int]  # trial numbers running in the killed workers
    retried: list[int]  # those with a finished retry of the same parameters
    seconds: float

    @property
    def ok(self) -> bool:
        finished = self.states["COMPLETE"] + self.states["PRUNED"]
        return finished == N_TRIALS and not self.states["RUNNING"] and self.killed and self.retried == self.killed


N_TRIALS = 40


def write_spec(folder: Path, name: str, n_trials: int) -> Path:
    spec = {
        "name": name,
        "task": "multi_label",
        "data": {"dir": "unused", "text_column": "text", "label_columns": ["a", "b"]},
        "training": {"epochs": 3},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        "sampler": {"type": "random"},
        "pruner": {"type": "median", "n_startup_trials": 5},
        "n_trials": n_trials,
        "trainer": "benchmarks.sleep_trainer:train",
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_chaos(backend: str, url: str, n_workers: int, n_kills: int, epoch_s: float, folder: Path) -> Outcome:
    name = f"chaos-{backend}-{os.getpid()}"
    spec_path = write_spec(folder, name, N_TRIALS)
    study = open_study(load_spec(str(spec_path)), url, heartbeat_interval=HEARTBEAT_S)
    os.environ["SLEEP_EPOCH_S"] = str(epoch_s)
    start = time.perf_counter()
    procs = start_workers(
        spec_path, worker_envs(n_workers), storage=url, data_dir=folder, heartbeat=HEARTBEAT_S
    )
    killed: list[int] = []
    for k in range(n_kills):
        killed += kill_one_mid_trial(study, procs, after_finished=(k + 1) * N_TRIALS // (n_kills + 2))
    wait_workers(procs)
    trials = study.get_trials(deepcopy=False)
    return Outcome(
        backend=backend,
        workers=n_workers,
        states=Counter(t.state.name for t in trials),
        killed=sorted(killed),
        retried=sorted(n for n in killed if has_finished_retry(trials, n)),
        seconds=time.perf_counter() - start,
    )


def kill_one_mid_trial(study: optuna.Study, procs: list[subprocess.Popen], after_finished: int) -> list[int]:
    """Once `after_finished` trials are done, SIGKILL a live worker whose trial has reported an
    epoch; returns the numbers of the trials it was running when it died."""
    pids = {p.pid: p for p in procs}
    while any(p.poll() is None for p in procs):
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in FINISHED for t in trials)
        running = [t for t in trials if t.state == TrialState.RUNNING and "epoch_001" in t.user_attrs]
        for trial in running if done >= after_finished else []:
            pid = _worker_pid(trial)
            if pid in pids and pids[pid].poll() is None:
                os.kill(pid, signal.SIGKILL)
                pids[pid].wait()
                # Read again: the trial seen above may have ended just before the kill.
                hit = [t.number for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING and _worker_pid(t) == pid]
                print(f"  killed worker pid {pid} (SIGKILL) during trial(s) {hit}", flush=True)
                return hit
        time.sleep(0.1)
    return []


def _worker_pid(trial: FrozenTrial) -> int:
    return int(str(trial.user_attrs.get("worker", ":0")).rsplit(":", 1)[1])


def has_finished_retry(trials: list[FrozenTrial], number: int) -> bool:
    original = next(t for t in trials if t.number == number)
    return original.state == TrialState.FAIL and any(
        t.state in FINISHED and number in t.system_attrs.get("retry_history", []) and t.params == original.params
        for t in trials
    )


def report(outcome: Outcome) -> None:
    finished = outcome.states["COMPLETE"] + outcome.states["PRUNED"]
    print(
        f"{outcome.backend:10s} {outcome.workers} workers: {finished}/{N_TRIALS} finished "
        f"({outcome.states['COMPLETE']} complete, {outcome.states['PRUNED']} pruned), "
        f"{outcome.states['FAIL']} failed, {outcome.states['RUNNING']} running, {outcome.states['WAITING']} waiting; "
        f"killed trials {outcome.killed}, retried and finished {outcome.retried}; "
        f"{outcome.seconds:.0f}s  -> {'OK' if outcome.ok else 'FAILED'}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter epochs (0.3 s instead of 1 s)")
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args(argv)
    epoch_s = 0.3 if args.quick else 1.0
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="hpo-chaos-") as tmp:
        folder = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "postgresql":
                outcomes.append(_on_postgres(folder, epoch_s))
            else:
                outcomes.append(run_chaos("sqlite", f"sqlite:///{folder}/chaos.db", 4, 2, epoch_s, folder))
            report(outcomes[-1])
    return 0 if all(o.ok for o in outcomes) else 1


def _on_postgres(folder: Path, epoch_s: float) -> Outcome:
    from tests.pg_server import start_server, teardown

    server = start_server()
    try:
        return run_chaos("postgresql", server.url, 8, 2, epoch_s, folder)
    finally:
        teardown(server)


if __name__ == "__main__":
    raise SystemExit(main())
