"""The trainer's only window to the outside: one call per epoch.

A Reporter answers whether training should stop (a pruned trial). Returning a bool instead of
raising lets the loop leave cleanly and free its memory first.
"""

from __future__ import annotations

from typing import Any, Protocol


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
        shown = "  ".join(f"{k}={metrics[k]:.4f}" for k in dict.fromkeys(keys) if isinstance(metrics.get(k), float))
        print(f"epoch {epoch}: {shown}", flush=True)
        return False
