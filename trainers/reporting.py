"""The trainer's only window to the outside: one call per epoch.

A Reporter answers whether training should stop (a pruned trial). Returning a bool instead of
raising lets the loop leave cleanly and free its memory first. A reporter may also take the
run's measured device memory (`report_resources`), which a scheduler packing several trials on
one GPU needs long before the first epoch ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Resources:
    """Device memory the run holds after its first training steps: the caching allocator's
    peak reservation, which is what another process on the same GPU cannot use."""

    peak_device_memory_mb: float


def report_resources(reporter: object, resources: Resources) -> None:
    """Hand `resources` to the reporter if it takes them (most need only `report`)."""
    take = getattr(reporter, "report_resources", None)
    if take is not None:
        take(resources)


class Reporter(Protocol):
    def report(self, epoch: int, metrics: dict[str, Any]) -> bool:
        """Receive the metrics of finished `epoch` (1-based); return True to stop training."""
        ...


class NullReporter:
    def report(self, epoch: int, metrics: dict[str, Any]) -> bool:
        return False


class PrintReporter:
    """Used by `python -m trainers`: one line per epoch."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor

    def report(self, epoch: int, metrics: dict[str, Any]) -> bool:
        keys = ("train_loss", "val_loss", self.monitor, "macro_roc_auc", "epoch_time_s")
        shown = "  ".join(
            f"{k}={metrics[k]:.4f}"
            for k in dict.fromkeys(keys)
            if isinstance(metrics.get(k), float)
        )
        print(f"epoch {epoch}: {shown}", flush=True)
        return False
