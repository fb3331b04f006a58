"""One Optuna trial: suggest parameters, train in a process of its own, report every epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hpo.search_space import suggest
from hpo.spec import StudySpec
from hpo.trial_process import run_trial_process


class TrialFailed(Exception):
    """The trial's training failed; the reason is in its user attributes and the study goes on."""


def epoch_attr(epoch: int) -> str:
    return f"epoch_{epoch:03d}"


def slim_metrics(metrics: dict) -> dict:
    """JSON-safe metrics for user attributes: NaN → None (the dashboard's JSON has no NaN)."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out[k] = slim_metrics(v)
        elif isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        else:
            out[k] = v
    return out


@dataclass
class Objective:
    spec: StudySpec
    data_dir: Path
    seed_base: int = 0

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.spec.search_space)
        config = self.spec.train_config(self.data_dir, params, seed=self.seed_base + trial.number)
        metric = self.spec.objective.metric
        epochs_seen = 0

        def on_epoch(epoch: int, metrics: dict) -> bool:
            nonlocal epochs_seen
            epochs_seen = epoch
            trial.set_user_attr(epoch_attr(epoch), slim_metrics(metrics))
            value = metrics[metric]
            if value is None or not math.isfinite(value):
                return False  # nothing to compare; the pruner would treat NaN as worst anyway
            trial.report(value, epoch)
            return trial.should_prune()

        outcome = run_trial_process(config, on_epoch)
        if outcome.status == "failed":
            trial.set_user_attr("fail_reason", outcome.error)
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "unknown")
        trial.set_user_attr("best_epoch", outcome.best_epoch)
        if outcome.status == "stopped":
            raise optuna.TrialPruned(f"pruned after epoch {epochs_seen}")
        return outcome.best_value

