"""Which CUDA devices this machine has, found without importing torch (`hpo workers` stays light).

`nvidia-smi -L` lists every GPU (and MIG device) the driver sees; without it, the driver's
`/proc/driver/nvidia/gpus/` folders count them. Both count physical devices, which is what
`--gpus` names: each worker gets one of them as its CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from hpo.errors import HpoError

_PROC_GPUS = Path("/proc/driver/nvidia/gpus")
_UUID = re.compile(r"UUID: ((?:GPU|MIG)-[0-9A-Za-z-]+)")


def visible_gpus() -> tuple[int, set[str]]:
    """How many GPUs the driver sees, and their UUIDs (GPU-… and MIG-…)."""
    smi = shutil.which("nvidia-smi")
    if smi is not None:
        try:
            listing = subprocess.run(
                [smi, "-L"], capture_output=True, text=True, timeout=20, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            listing = ""
        gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
        if gpus:
            return len(gpus), set(_UUID.findall(listing))
    if _PROC_GPUS.is_dir():
        return len([p for p in _PROC_GPUS.iterdir() if p.is_dir()]), set()
    return 0, set()


def check_gpus(requested: list[str]) -> None:
    """Refuse `--gpus` that name devices this machine does not have, rather than running on CPU."""
    count, uuids = visible_gpus()
    if count == 0:
        raise HpoError(
            f"--gpus {','.join(requested)}: this machine shows no NVIDIA GPU (no nvidia-smi, no driver); "
            "run without --gpus to use the CPU (-n K workers)"
        )
    missing = [
        g
        for g in requested
        if (g.isdigit() and int(g) >= count) or (not g.isdigit() and uuids and g not in uuids)
    ]
    if missing:
        raise HpoError(
            f"--gpus: device(s) {missing} not on this machine, which has {count} GPU(s) (0-{count - 1})"
        )
