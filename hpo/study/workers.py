"""`hpo workers`: k runner processes on one study, each pinned to a GPU or to a share of the CPU.

The caller creates the study first, so workers never race to create it; each worker is an
`hpo study --join` process that loads it, exactly what a worker on another machine runs against
the same PostgreSQL URL. The storage URL reaches the workers in their environment, as given (a
${PGPASSWORD} reference stays unexpanded), never on a command line where `ps` would show it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def worker_envs(n: int, gpus: list[str] | None = None, cpus: int | None = None) -> list[dict[str, str]]:
    """Each worker's own environment: its GPU (round-robin when there are more workers than GPUs)
    or, without GPUs, an equal share of the CPU's threads for torch."""
    if gpus:
        return [{"HPO_WORKER": f"w{i}", "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(n)]
    threads = str(max(1, (cpus or len(os.sched_getaffinity(0))) // n))
    return [{"HPO_WORKER": f"w{i}", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads} for i in range(n)]


def start_workers(
    spec_path: Path,
    envs: list[dict[str, str]],
    *,
    storage: str | None,
    data_dir: Path,
    heartbeat: int,
    n_trials: int | None = None,
    stdout: int | None = None,
) -> list[subprocess.Popen]:
    """Start one `hpo study --join` process per environment in `envs` (output to `stdout`, a
    file descriptor, when given: a benchmark's hundred workers)."""
    cmd = [sys.executable, "-m", "hpo", "study", str(spec_path), "--join", "--data-dir", str(data_dir)]
    cmd += ["--heartbeat", str(heartbeat), *(["--n-trials", str(n_trials)] if n_trials else [])]
    base = {**os.environ, **({"HPO_STORAGE": storage} if storage else {})}
    # Sessions of their own: a terminal's Ctrl-C reaches this process only, which stops each
    # worker once instead of every process in the group being interrupted at the same time.
    return [subprocess.Popen(cmd, env={**base, **env}, start_new_session=True, stdout=stdout, stderr=stdout) for env in envs]


def wait_workers(procs: list[subprocess.Popen], grace_s: float = 60.0) -> int:
    """Wait for every worker and return the first non-zero exit code. On Ctrl-C or SIGTERM, stop
    them all (each marks its running trial FAIL and stops its trial process) and re-raise."""
    try:
        for p in procs:
            p.wait()
    except KeyboardInterrupt:
        stop_workers(procs, grace_s)
        raise
    return next((p.returncode for p in procs if p.returncode), 0)


def stop_workers(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each worker, then SIGKILL those still alive after `grace_s` (heartbeats will fail
    and re-queue their trials)."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
