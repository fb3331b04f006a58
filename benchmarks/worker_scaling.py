"""Worker scaling: finished trials per minute with 1, 2, 4 and 8 workers, SQLite and PostgreSQL.

Each trial sleeps a fixed time per epoch (2 s, 3 epochs) and reports every epoch. It runs
- through the service: `hpo study --join` worker processes (hpo.workers), the study lock, one
  training process per trial (testing.sleep_trainer), per-epoch reports, artifacts;
- through plain Optuna, the reference: k processes each calling `study.optimize` on an objective
  that sleeps and calls `trial.report` in-process, on the same storage.

Throughput is the steady-state rate, k workers x 60 s / cycle, where the cycle is the mean time
from a trial's start to the same worker's next start, each worker's first (warm-up: it starts
the worker's forkserver) left out. Process start-up and the idle tail (workers waiting for the
last trials) are not in it; the end-to-end rate (trials / wall time) is printed beside it.
Efficiency is throughput with k workers / (k x throughput with one), i.e. cycle with one worker
/ cycle with k; the service's overhead per trial is its cycle minus the reference's. A throwaway PostgreSQL server is started
(testing/pg_server.py).

    python -m benchmarks.worker_scaling [--quick] [--workers 1,2,4,8] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo.study.workers import wait_workers
from storage import open_storage
from testing.pg_server import running_server
from testing.specs import sleep_spec
from testing.workers import start_study_workers

EPOCHS = 3
TARGET_EFFICIENCY, TARGET_OVERHEAD_S = 0.90, 0.5


@dataclass
class Run:
    backend: str
    path: str  # "service" or "optuna"
    workers: int
    per_minute: float  # steady-state finished trials per minute, all workers together
    cycle_s: float  # mean time from one trial's start to the same worker's next
    warmup_s: float  # how much longer a worker's first cycle was
    wall_s: float  # first trial start to last trial end
    trials: int


def steady_rate(
    trials: list[FrozenTrial], worker_of: Callable[[FrozenTrial], str], workers: int
) -> tuple[float, float, float]:
    """(trials per minute of all workers, mean per-trial cycle in seconds after warm-up, how much
    longer a worker's first cycle was)."""
    starts: dict[str, list[float]] = defaultdict(list)
    for t in trials:
        starts[worker_of(t)].append(t.datetime_start.timestamp())
    runs = [sorted(s) for s in starts.values() if len(s) > 1]
    intervals = [b - a for s in runs for a, b in zip(s[1:], s[2:], strict=False)]
    cycle = sum(intervals) / len(intervals)
    warmup = sum(s[1] - s[0] for s in runs) / len(runs) - cycle
    return workers * 60 / cycle, cycle, warmup


def wall_seconds(trials: list[FrozenTrial]) -> float:
    return max(t.datetime_complete.timestamp() for t in trials) - min(
        t.datetime_start.timestamp() for t in trials
    )


def service_run(
    backend: str, url: str, workers: int, rounds: int, epoch_s: float, folder: Path
) -> Run:
    name = f"scaling-service-{backend}-{workers}-{os.getpid()}"
    spec_path = sleep_spec(
        folder, name=name, training={"epochs": EPOCHS}, n_trials=rounds * workers
    )
    os.environ["SLEEP_EPOCH_S"] = str(epoch_s)
    study, procs = start_study_workers(spec_path, url, workers, heartbeat=60)
    if wait_workers(procs):
        raise RuntimeError(f"a service worker failed ({backend}, {workers} workers)")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return Run(
        backend,
        "service",
        workers,
        *steady_rate(trials, lambda t: t.user_attrs["worker"], workers),
        wall_seconds(trials),
        len(trials),
    )


def optuna_run(backend: str, url: str, workers: int, rounds: int, epoch_s: float) -> Run:
    name = f"scaling-optuna-{backend}-{workers}-{os.getpid()}"
    study = optuna.create_study(
        study_name=name, storage=open_storage(url, heartbeat_interval=None), direction="maximize"
    )
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_optuna_worker, args=(url, name, rounds, epoch_s))
        for _ in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    if any(p.exitcode for p in procs):
        raise RuntimeError(f"a plain Optuna worker failed ({backend}, {workers} workers)")
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return Run(
        backend,
        "optuna",
        workers,
        *steady_rate(trials, lambda t: t.user_attrs["pid"], workers),
        wall_seconds(trials),
        len(trials),
    )


def _optuna_worker(url: str, name: str, n_trials: int, epoch_s: float) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat_interval=None))

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        lr = trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True)
        for epoch in range(1, EPOCHS + 1):
            time.sleep(epoch_s)
            trial.report(lr * epoch, epoch)
        return lr

    study.optimize(objective, n_trials=n_trials)


def print_table(runs: list[Run]) -> None:
    one = {(r.backend, r.path): r.per_minute for r in runs if r.workers == 1}
    print(
        f"{'backend':11s}{'path':9s}{'workers':>8s}{'trials/min':>12s}{'efficiency':>12s}{'cycle s':>9s}"
        f"{'warm-up s':>11s}{'trials':>8s}{'wall s':>8s}{'end-to-end/min':>16s}"
    )
    for r in runs:
        efficiency = r.per_minute / (r.workers * one[(r.backend, r.path)])
        print(
            f"{r.backend:11s}{r.path:9s}{r.workers:8d}{r.per_minute:12.2f}{efficiency:12.3f}{r.cycle_s:9.2f}"
            f"{r.warmup_s:+11.2f}{r.trials:8d}{r.wall_s:8.1f}{60 * r.trials / r.wall_s:16.2f}"
        )


def summarize(runs: list[Run], epoch_s: float) -> None:
    by = {(r.backend, r.path, r.workers): r for r in runs}
    ideal = EPOCHS * epoch_s
    for backend in dict.fromkeys(r.backend for r in runs):
        most = max(r.workers for r in runs if r.backend == backend)
        service_one, service_most = by[(backend, "service", 1)], by[(backend, "service", most)]
        efficiency = service_most.per_minute / (most * service_one.per_minute)
        line = f"{backend}: efficiency at {most} workers {efficiency:.3f} (target >= {TARGET_EFFICIENCY})"
        for k in (1, most):
            if (backend, "optuna", k) in by:
                overhead = by[(backend, "service", k)].cycle_s - by[(backend, "optuna", k)].cycle_s
                line += (
                    f"; overhead per trial over plain Optuna at {k} worker(s) {overhead:+.2f} s"
                )
        print(
            f"{line} (target <= {TARGET_OVERHEAD_S} s); a trial's sleep alone is {ideal:.1f} s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.worker_scaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="0.5 s epochs, 3 rounds, 1 and 2 workers: a smoke run"
    )
    parser.add_argument("--workers", help="comma-separated worker counts (default 1,2,4,8)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--epoch-s", type=float, help="sleep per epoch (default 2, --quick 0.5)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="trials per worker (default 4, --quick 3; at least 3: the first is warm-up)",
    )
    args = parser.parse_args(argv)
    counts = [int(k) for k in (args.workers or ("1,2" if args.quick else "1,2,4,8")).split(",")]
    epoch_s = args.epoch_s or (0.5 if args.quick else 2.0)
    rounds = args.rounds or (3 if args.quick else 4)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="hpo-scaling-") as tmp:
        for backend in args.backends.split(","):
            with _storage(backend, Path(tmp)) as url:
                for k in counts:
                    runs.append(service_run(backend, url, k, rounds, epoch_s, Path(tmp)))
                    print(
                        f"  {backend} service, {k} workers: {runs[-1].per_minute:.2f} trials/min",
                        flush=True,
                    )
                    if k in (1, max(counts)):  # the reference's own scaling is not the question
                        runs.append(optuna_run(backend, url, k, rounds, epoch_s))
                        print(
                            f"  {backend} optuna,  {k} workers: {runs[-1].per_minute:.2f} trials/min",
                            flush=True,
                        )
    print_table(runs)
    summarize(runs, epoch_s)
    return 0


@contextlib.contextmanager
def _storage(backend: str, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a throwaway PostgreSQL server for the duration."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/scaling.db"
        return
    with running_server() as server:
        yield server.url


if __name__ == "__main__":
    raise SystemExit(main())
