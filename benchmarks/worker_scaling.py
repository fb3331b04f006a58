"""Worker scaling: finished trials per minute with k workers, on SQLite, PostgreSQL directly, or
PostgreSQL behind `hpo storage-proxy`.

Each trial sleeps a fixed time per epoch (2 s, 3 epochs) and reports every epoch. It runs
- through the service: `hpo study --join` worker processes (hpo.workers), the study lock (or the
  proxy's lease), one training process per trial (testing.sleep_trainer), per-epoch reports,
  heartbeats, artifacts;
- through plain Optuna, the reference: k processes each calling `study.optimize` on an objective
  that sleeps and calls `trial.report` in-process, on the same storage (1 and the most workers;
  `--scale`: 1 worker only).

Every run's study has rounds x k trials. Throughput is the steady-state rate, k workers x 60 s /
cycle, where the cycle is the mean time from a trial's start to the same worker's next start, each
worker's first trial (warm-up: it starts the worker's forkserver) left out. The first trials of
all workers start sleeping together, once every worker has one (SLEEP_BARRIER): the cycles after
it are measured with all k workers running, not while the last ones are still starting.
Efficiency is throughput with k workers / (k x throughput with one), i.e. cycle with one worker /
cycle with k; the overhead per trial is the cycle minus the trial's sleep. While a run runs, a
thread samples PostgreSQL's client connections (pg_stat_activity) and the memory of every process
the benchmark started (benchmarks.monitor). Through the proxy, the proxy process's CPU time per
finished trial is read from /proc, from the barrier on (the workers' start-up left out, and with
it the first round's trial creation, about a quarter of a trial's calls): one Python process
serves every worker, so a core can serve at most 60 / that many trials a minute, wherever the
workers run. A run that breaks (workers that cannot connect, failed trials) is reported, not
raised, with the first error lines of the workers' log. PostgreSQL is a throwaway server
(testing/pg_server.py) started with --max-connections.

    python -m benchmarks.worker_scaling [--quick] [--workers 1,2,4,8] [--backends sqlite,postgresql,proxy]
    python -m benchmarks.worker_scaling --scale   # 1,16,32,64,128 workers on postgresql and proxy, max_connections 50
    python -m benchmarks.worker_scaling --workers 1,16,32,64 --backends proxy --proxy-processes 2
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.engine import make_url

from benchmarks.monitor import BENCH_APP, Monitor, Peaks, descendants
from hpo.spec import load_spec
from hpo.study import open_study
from hpo.study.workers import start_workers, stop_workers, worker_envs
from storage import open_storage
from storage.proxy_client import open_proxy

EPOCHS = 3
TARGET_EFFICIENCY, TARGET_OVERHEAD_S = 0.85, 0.5
RUN_LIMIT_S = 420  # a run still going after this (workers that hang on a full server) is stopped


@dataclass
class Target:
    """Where workers store (worker_url) and where the benchmark reads results without being
    counted (reader_url); socket_dir/port: the PostgreSQL server to watch, if any."""

    worker_url: str
    reader_url: str
    socket_dir: Path | None = None
    port: int | None = None
    proxy_pid: int | None = None


@dataclass
class Run:
    backend: str
    path: str  # "service" or "optuna"
    workers: int
    n_trials: int
    per_minute: float  # steady-state finished trials per minute, all workers together
    cycle_s: float  # mean time from one trial's start to the same worker's next
    warmup_s: float  # how much longer a worker's first cycle was (includes waiting at the barrier)
    wall_s: float  # first trial start to last trial end
    states: Counter = field(default_factory=Counter)
    worker_errors: int = 0  # workers that exited non-zero
    running_max: int = 0  # most trials seen running at once
    peaks: Peaks = field(default_factory=Peaks)
    workers_stopped: int = 0  # workers still running at RUN_LIMIT_S, stopped by the benchmark
    proxy_cpu_s: float = math.nan  # the proxy process's CPU seconds per finished trial

    @property
    def finished(self) -> int:
        return self.states["COMPLETE"] + self.states["PRUNED"]


def steady_rate(
    trials: list[FrozenTrial], worker_of: Callable[[FrozenTrial], str], workers: int
) -> tuple[float, float, float]:
    """(trials per minute of the workers that ran trials, mean per-trial cycle in seconds after
    warm-up, how much longer a worker's first cycle was); NaN where a run left too few trials to
    tell. Workers that never ran a trial (could not connect) add nothing to the rate."""
    starts: dict[str, list[float]] = defaultdict(list)
    for t in trials:
        starts[worker_of(t)].append(t.datetime_start.timestamp())
    runs = [sorted(s) for s in starts.values() if len(s) > 1]
    intervals = [b - a for s in runs for a, b in zip(s[1:], s[2:], strict=False)]
    if not intervals:
        return math.nan, math.nan, math.nan
    cycle = sum(intervals) / len(intervals)
    warmup = sum(s[1] - s[0] for s in runs) / len(runs) - cycle
    return min(workers, len(starts)) * 60 / cycle, cycle, warmup


def wall_seconds(trials: list[FrozenTrial]) -> float:
    ends = [t.datetime_complete.timestamp() for t in trials if t.datetime_complete]
    return max(ends) - min(t.datetime_start.timestamp() for t in trials) if ends else math.nan


def write_spec(folder: Path, name: str, n_trials: int) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "task": "multi_label",
                "data": {"dir": "unused", "text_column": "text", "label_columns": ["a", "b"]},
                "training": {"epochs": EPOCHS},
                "search_space": {
                    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}
                },
                "sampler": {"type": "random"},
                "pruner": {"type": "none"},
                "n_trials": n_trials,
                "trainer": "testing.sleep_trainer:train",
            }
        )
    )
    return path


def service_run(
    backend: str, target: Target, workers: int, rounds: int, epoch_s: float, folder: Path
) -> Run:
    name = f"scaling-service-{backend}-{workers}-{os.getpid()}"
    spec_path = write_spec(folder, name, rounds * workers)
    study = open_study(load_spec(str(spec_path)), target.reader_url)
    barrier = folder / f"{name}.go"
    os.environ.update(SLEEP_EPOCH_S=str(epoch_s), SLEEP_BARRIER=str(barrier))
    with (
        (folder / f"{name}.log").open("w") as log,
        Monitor(target.socket_dir, target.port) as monitor,
    ):
        procs = start_workers(
            spec_path,
            worker_envs(workers),
            storage=target.worker_url,
            data_dir=folder,
            heartbeat=60,
            stdout=log.fileno(),
        )
        running_max = _release_when_all_started(study, procs, barrier)
        proxy_cpu = process_cpu_s(target.proxy_pid)  # the workers' start-up left out
        most, stopped = _wait_bounded(study, procs)
        proxy_cpu = process_cpu_s(target.proxy_pid) - proxy_cpu
    errors = sum(1 for p in procs if p.returncode != 0 and p not in stopped)
    run = _measured(
        study,
        backend,
        "service",
        workers,
        rounds,
        "worker",
        errors,
        max(running_max, most),
        monitor,
    )
    run.workers_stopped, run.proxy_cpu_s = len(stopped), proxy_cpu / max(run.finished, 1)
    if errors:
        print(f"  workers' first errors: {'; '.join(first_errors(folder / f'{name}.log'))}")
    return run


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds a live process and its live descendants (a proxy's server
    processes) have used so far; NaN without a process."""
    if pid is None:
        return math.nan
    return sum(_own_cpu_s(p) for p in (pid, *descendants(pid)))


def _own_cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # it ended meanwhile
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_errors(log: Path, n: int = 3) -> list[str]:
    """The first `n` distinct error lines the workers printed."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    found = [line.strip() for line in lines if line.lstrip().startswith(("error:", "Traceback"))]
    return list(dict.fromkeys(found))[:n] or ["none printed"]


def _release_when_all_started(
    study: optuna.Study, procs: list[subprocess.Popen], barrier: Path, quiet_s: float = 20
) -> int:
    """Open the barrier once every live worker has a trial running, or once no new one has
    started for `quiet_s` (workers that cannot connect never will); returns the most running."""
    most, changed = 0, time.monotonic()
    deadline = time.monotonic() + RUN_LIMIT_S
    while time.monotonic() < deadline:
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        alive = sum(p.poll() is None for p in procs)
        if running > most:
            most, changed = running, time.monotonic()
        if (
            (running and running >= alive)
            or not alive
            or (most and time.monotonic() - changed > quiet_s)
        ):
            break
        time.sleep(0.5)
    barrier.touch()
    return most


def _wait_bounded(
    study: optuna.Study, procs: list[subprocess.Popen]
) -> tuple[int, list[subprocess.Popen]]:
    """Wait for the workers, sampling how many trials run at once; stop those left at the
    limit. Returns (most trials running at once, the workers stopped)."""
    most, deadline = 0, time.monotonic() + RUN_LIMIT_S
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        most = max(most, len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))))
        time.sleep(1)
    left = [p for p in procs if p.poll() is None]
    stop_workers(left, grace_s=10)
    for p in procs:
        p.wait()
    return most, left


def optuna_run(backend: str, target: Target, workers: int, rounds: int, epoch_s: float) -> Run:
    name = f"scaling-optuna-{backend}-{workers}-{os.getpid()}"
    study = optuna.create_study(
        study_name=name,
        storage=open_storage(target.reader_url, heartbeat_interval=None),
        direction="maximize",
    )
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_optuna_worker, args=(target.worker_url, name, rounds, epoch_s))
        for _ in range(workers)
    ]
    with Monitor(target.socket_dir, target.port) as monitor:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    errors = sum(1 for p in procs if p.exitcode)
    return _measured(study, backend, "optuna", workers, rounds, "pid", errors, 0, monitor)


def _measured(
    study: optuna.Study,
    backend: str,
    path: str,
    workers: int,
    rounds: int,
    worker_attr: str,
    errors: int,
    running_max: int,
    monitor: Monitor,
) -> Run:
    """The Run row of a finished study whose trials name their worker in `worker_attr`."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return Run(
        backend,
        path,
        workers,
        rounds * workers,
        *steady_rate(complete, lambda t: t.user_attrs[worker_attr], workers),
        wall_seconds(complete),
        Counter(t.state.name for t in trials),
        errors,
        running_max,
        monitor.peaks,
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


def print_table(runs: list[Run], epoch_s: float) -> None:
    one = {(r.backend, r.path): r.per_minute for r in runs if r.workers == 1}
    print(
        f"{'backend':11s}{'path':8s}{'workers':>8s}{'trials':>7s}{'finished':>9s}{'failed':>7s}{'errors':>7s}"
        f"{'trials/min':>11s}{'effic.':>7s}{'cycle s':>8s}{'overhead s':>11s}{'db conns':>9s}{'running':>8s}"
        f"{'PSS GB':>7s}{'RSS GB':>7s}{'wall s':>7s}{'stopped':>8s}{'proxy CPU s/trial':>18s}"
    )
    for r in runs:
        efficiency = (
            r.per_minute / (r.workers * one[(r.backend, r.path)])
            if (r.backend, r.path) in one
            else math.nan
        )
        print(
            f"{r.backend:11s}{r.path:8s}{r.workers:8d}{r.n_trials:7d}{r.finished:9d}{r.states['FAIL']:7d}{r.worker_errors:7d}"
            f"{r.per_minute:11.1f}{efficiency:7.3f}{r.cycle_s:8.2f}{r.cycle_s - EPOCHS * epoch_s:11.2f}{r.peaks.connections:9d}"
            f"{r.running_max:8d}{r.peaks.pss_gb:7.2f}{r.peaks.rss_gb:7.2f}{r.wall_s:7.1f}"
            f"{r.workers_stopped:8d}{r.proxy_cpu_s:18.3f}"
        )


def summarize(runs: list[Run], epoch_s: float, max_connections: int) -> None:
    by = {(r.backend, r.path, r.workers): r for r in runs}
    for backend in dict.fromkeys(r.backend for r in runs):
        service = sorted(
            (r for r in runs if r.backend == backend and r.path == "service"),
            key=lambda r: r.workers,
        )
        one = by.get((backend, "service", 1))
        for r in service:
            broken = (
                r.finished != r.n_trials
                or r.states["FAIL"]
                or r.worker_errors
                or r.workers_stopped
            )
            efficiency = r.per_minute / (r.workers * one.per_minute) if one else math.nan
            verdict = "BROKE" if broken else "ok"
            print(
                f"{backend} {r.workers:3d} workers: {verdict}: {r.finished}/{r.n_trials} finished, {r.states['FAIL']} failed, "
                f"{r.worker_errors} workers failed, {r.workers_stopped} stopped at {RUN_LIMIT_S} s; "
                f"efficiency {efficiency:.3f} (target >= {TARGET_EFFICIENCY}); "
                f"PostgreSQL held up to {r.peaks.connections} client connections (max_connections {max_connections}); "
                f"processes up to {r.peaks.processes}, PSS {r.peaks.pss_gb:.1f} GB",
                flush=True,
            )
        capacity(backend, service, one)
        reference = by.get((backend, "optuna", 1))
        if one and reference:
            print(
                f"{backend}: the service's overhead per trial over plain Optuna at 1 worker {one.cycle_s - reference.cycle_s:+.2f} s "
                f"(target <= {TARGET_OVERHEAD_S} s); a trial's sleep alone is {EPOCHS * epoch_s:.1f} s",
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
    parser.add_argument(
        "--scale",
        action="store_true",
        help="1,16,32,64,128 workers on postgresql and proxy, 3 rounds",
    )
    parser.add_argument("--workers", help="comma-separated worker counts (default 1,2,4,8)")
    parser.add_argument(
        "--backends", help="any of sqlite,postgresql,proxy (default sqlite,postgresql)"
    )
    parser.add_argument("--epoch-s", type=float, help="sleep per epoch (default 2, --quick 0.5)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="trials per worker (default 4, --quick and --scale 3; at least 3: the first is warm-up)",
    )
    parser.add_argument(
        "--proxy-processes",
        type=int,
        default=1,
        help="hpo storage-proxy --processes (default 1)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=50,
        help="the PostgreSQL server's max_connections (default 50)",
    )
    args = parser.parse_args(argv)
    counts = [
        int(k)
        for k in (
            args.workers
            or ("1,16,32,64,128" if args.scale else "1,2" if args.quick else "1,2,4,8")
        ).split(",")
    ]
    backends = (
        args.backends or ("postgresql,proxy" if args.scale else "sqlite,postgresql")
    ).split(",")
    epoch_s = args.epoch_s or (0.5 if args.quick else 2.0)
    rounds = args.rounds or (3 if args.quick or args.scale else 4)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="hpo-scaling-") as tmp:
        for backend in backends:
            label = (
                f"proxy-x{args.proxy_processes}"
                if backend == "proxy" and args.proxy_processes > 1
                else backend
            )
            with _storage(
                backend, Path(tmp), args.max_connections, args.proxy_processes
            ) as target:
                for k in counts:
                    runs.append(service_run(label, target, k, rounds, epoch_s, Path(tmp)))
                    _progress(runs[-1])
                    if k == 1 or (
                        k == max(counts) and not args.scale
                    ):  # the reference's own scaling is not the question
                        runs.append(optuna_run(label, target, k, rounds, epoch_s))
                        _progress(runs[-1])
    print_table(runs, epoch_s)
    summarize(runs, epoch_s, args.max_connections)
    return 0


def capacity(backend: str, service: list[Run], one: Run | None) -> None:
    """What one proxy process can serve, from its CPU per trial (lowest of the runs: the
    figure a proxy with a core of its own would show, not one inflated by a busy machine)."""
    costs = [r.proxy_cpu_s for r in service if math.isfinite(r.proxy_cpu_s)]
    if not costs or one is None:
        return
    per_minute = 60 / min(costs)
    workers = per_minute / (TARGET_EFFICIENCY * one.per_minute)
    print(
        f"{backend}: the proxy used {min(costs):.3f}-{max(costs):.3f} CPU s per trial: one proxy process on a core of "
        f"its own serves at most {per_minute:.0f} trials/min, {workers:.0f} workers of these trials "
        f"at efficiency {TARGET_EFFICIENCY}",
        flush=True,
    )


def _progress(r: Run) -> None:
    print(
        f"  {r.backend} {r.path}, {r.workers} workers: {r.finished}/{r.n_trials} finished, {r.per_minute:.1f} trials/min, "
        f"{r.peaks.connections} db connections",
        flush=True,
    )


@contextlib.contextmanager
def _storage(
    backend: str, folder: Path, max_connections: int, proxy_processes: int = 1
) -> Iterator[Target]:
    """A fresh SQLite file, or a throwaway PostgreSQL server (behind a proxy process for "proxy")."""
    if backend == "sqlite":
        url = f"sqlite:///{folder}/scaling.db"
        yield Target(url, url)
        return
    from testing.pg_server import start_server, teardown

    server = start_server(max_connections=max_connections)
    reader = (
        make_url(server.url)
        .update_query_dict({"application_name": BENCH_APP})
        .render_as_string(hide_password=False)
    )
    try:
        if backend == "postgresql":
            yield Target(server.url, reader, server.socket_dir, server.port)
        else:
            with _proxy(server.url, folder, proxy_processes) as (proxy_url, pid):
                yield Target(proxy_url, reader, server.socket_dir, server.port, pid)
    finally:
        teardown(server)


@contextlib.contextmanager
def _proxy(database_url: str, folder: Path, processes: int) -> Iterator[tuple[str, int]]:
    """`hpo storage-proxy` as its own process, as it runs in production, on a free loopback port."""
    from testing.pg_server import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "hpo", "storage-proxy", "--port", str(port)]
    cmd += ["--processes", str(processes)]
    with (folder / "proxy.log").open("w") as log:
        proc = subprocess.Popen(
            cmd, env={**os.environ, "HPO_STORAGE": database_url}, stdout=log, stderr=log
        )
    try:
        # Answering before the workers start, as a proxy does in production: started together,
        # its start-up competes with k workers' imports for the cores and may outlast their wait.
        open_proxy("127.0.0.1", port, connect_timeout_s=120).close()
        yield f"grpc://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
