"""`hpo workers`: k runner processes on one study, each pinned to a GPU or to a share of the CPU.

The caller creates the study first, so workers never race to create it; each worker is an
`hpo study --join` process that loads it, exactly what a worker on another machine runs against
the same PostgreSQL URL. The storage URL reaches the workers in their environment, as given (a
${PGPASSWORD} reference stays unexpanded), never on a command line where `ps` would show it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from hpo.errors import HpoError
from hpo.study.placement import CAPACITY_ENV

AUTO_MAX_PER_GPU = (
    8  # `--per-gpu auto` starts this many workers per GPU; memory decides how many train
)


def worker_envs(
    n: int,
    gpus: list[str] | None = None,
    cpus: int | None = None,
    gpu_memory_mb: dict[str, float] | None = None,
) -> list[dict[str, str]]:
    """Each worker's own environment: its GPU (round-robin when there are more workers than GPUs)
    or, without GPUs, an equal share of the CPU's threads for torch. With `gpu_memory_mb` (per
    device) the workers pack trials by measured memory (hpo.study.placement)."""
    if gpus:
        envs = [
            {"HPO_WORKER": f"w{i}", "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} for i in range(n)
        ]
        for env in envs if gpu_memory_mb else []:
            env[CAPACITY_ENV] = str(gpu_memory_mb[env["CUDA_VISIBLE_DEVICES"]])
        return envs
    threads = str(max(1, (cpus or len(os.sched_getaffinity(0))) // n))
    return [
        {"HPO_WORKER": f"w{i}", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        for i in range(n)
    ]


def workers_per_gpu(per_gpu: str | None) -> tuple[int, bool]:
    """`--per-gpu K` or `auto`: workers per GPU, and whether memory decides admission."""
    if per_gpu in (None, "auto"):
        return (AUTO_MAX_PER_GPU, True) if per_gpu == "auto" else (1, False)
    if not per_gpu.isdigit() or int(per_gpu) < 1:
        raise HpoError(
            f"--per-gpu {per_gpu!r}: give a number of trials per GPU (1, 2, ...) or auto"
        )
    return int(per_gpu), False


def gpu_memory(gpus: list[str], declared_mb: float | None) -> dict[str, float]:
    """Each device's memory in MiB: as declared (--gpu-memory-mb), else from nvidia-smi, which
    needs no CUDA context in this process."""
    if declared_mb:
        return dict.fromkeys(gpus, float(declared_mb))
    smi = shutil.which("nvidia-smi")
    if smi is None:
        raise HpoError(
            "--per-gpu auto needs each GPU's memory: nvidia-smi is not on PATH; give it with --gpu-memory-mb"
        )
    query = [smi, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"]
    rows = [
        line.split(",")
        for line in subprocess.run(
            query, capture_output=True, text=True, check=True
        ).stdout.splitlines()
    ]
    total = {index.strip(): float(mb) for index, mb in rows}
    missing = [g for g in gpus if g not in total]
    if missing:
        raise HpoError(
            f"--gpus {','.join(gpus)}: nvidia-smi lists no device {', '.join(missing)} (it has {', '.join(total) or 'none'})"
        )
    return {g: total[g] for g in gpus}


def start_workers(
    spec_path: Path,
    envs: list[dict[str, str]],
    *,
    storage: str | None,
    data_dir: Path,
    heartbeat: int,
    n_trials: int | None = None,
    variant: str | None = None,
    mlflow: str | None = None,
    budget_min: float | None = None,
    stdout: int | None = None,
) -> list[subprocess.Popen]:
    """Start one `hpo study --join` process per environment in `envs`, on the same spec and
    variant (`mlflow`: the caller's --mlflow, passed on; output to `stdout`, a file descriptor,
    when given: a benchmark's hundred workers)."""
    cmd = [sys.executable, "-m", "hpo", "study", str(spec_path), "--join"]
    if Path(
        data_dir
    ).is_dir():  # else the spec's data.dir is absolute: the workers' default is as good
        cmd += ["--data-dir", str(data_dir)]
    cmd += [
        "--heartbeat",
        str(heartbeat),
        *(["--n-trials", str(n_trials)] if n_trials else []),
        *(["--variant", variant] if variant else []),
    ]
    cmd += ["--mlflow", mlflow] if mlflow else []
    cmd += ["--budget-min", str(budget_min)] if budget_min else []
    base = {**os.environ, **({"HPO_STORAGE": storage} if storage else {})}
    # Sessions of their own: a terminal's Ctrl-C reaches this process only, which stops each
    # worker once instead of every process in the group being interrupted at the same time.
    return [
        subprocess.Popen(
            cmd, env={**base, **env}, start_new_session=True, stdout=stdout, stderr=stdout
        )
        for env in envs
    ]


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
