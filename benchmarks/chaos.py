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
from optuna.trial import FrozenTrial, TrialState

from hpo.study import n_finished
from hpo.study.workers import wait_workers
from testing.pg_server import running_server
from testing.specs import sleep_spec
from testing.workers import (
    FINISHED,
    mid_trial,
    retries_of,
    start_study_workers,
    states,
    worker_pid,
)


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
        return (
            finished == N_TRIALS
            and not self.states["RUNNING"]
            and self.killed
            and self.retried == self.killed
        )


N_TRIALS = 40


def run_chaos(
    backend: str, url: str, n_workers: int, n_kills: int, epoch_s: float, folder: Path
) -> Outcome:
    spec_path = sleep_spec(
        folder,
        name=f"chaos-{backend}-{os.getpid()}",
        n_trials=N_TRIALS,
        pruner={"type": "median", "n_startup_trials": 5},
    )
    os.environ["SLEEP_EPOCH_S"] = str(epoch_s)
    start = time.perf_counter()
    study, procs = start_study_workers(spec_path, url, n_workers)
    killed: list[int] = []
    for k in range(n_kills):
        killed += kill_one_mid_trial(
            study, procs, after_finished=(k + 1) * N_TRIALS // (n_kills + 2)
        )
    wait_workers(procs)
    trials = study.get_trials(deepcopy=False)
    return Outcome(
        backend=backend,
        workers=n_workers,
        states=states(study),
        killed=sorted(killed),
        retried=sorted(n for n in killed if has_finished_retry(trials, n)),
        seconds=time.perf_counter() - start,
    )


def kill_one_mid_trial(
    study: optuna.Study, procs: list[subprocess.Popen], after_finished: int
) -> list[int]:
    """Once `after_finished` trials are done, SIGKILL a live worker whose trial has reported an
    epoch; returns the numbers of the trials it was running when it died."""
    while any(p.poll() is None for p in procs):
        found = mid_trial(study, procs) if n_finished(study) >= after_finished else None
        if found:
            victim = found[1]
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            # Read again: the trial seen above may have ended just before the kill.
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            hit = [t.number for t in running if worker_pid(t) == victim.pid]
            print(f"  killed worker pid {victim.pid} (SIGKILL) during trial(s) {hit}", flush=True)
            return hit
        time.sleep(0.1)
    return []


def has_finished_retry(trials: list[FrozenTrial], number: int) -> bool:
    original = next(t for t in trials if t.number == number)
    retries = retries_of(trials, number)
    return original.state == TrialState.FAIL and any(
        t.state in FINISHED and t.params == original.params for t in retries
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
    parser.add_argument(
        "--quick", action="store_true", help="shorter epochs (0.3 s instead of 1 s)"
    )
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
                outcomes.append(
                    run_chaos("sqlite", f"sqlite:///{folder}/chaos.db", 4, 2, epoch_s, folder)
                )
            report(outcomes[-1])
    return 0 if all(o.ok for o in outcomes) else 1


def _on_postgres(folder: Path, epoch_s: float) -> Outcome:
    with running_server() as server:
        return run_chaos("postgresql", server.url, 8, 2, epoch_s, folder)


if __name__ == "__main__":
    raise SystemExit(main())
