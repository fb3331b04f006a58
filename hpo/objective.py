"""One Optuna trial: suggest parameters, train in a process of its own, report every epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from hpo.search_space import suggest
from hpo.spec import StudySpec
from hpo.trial_artifacts import TrialRecorder
from hpo.trial_process import run_trial_process
from storage import with_retries


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
    artifact_dir: Path | None = None  # each trial's log, metrics and plots go here; None: none kept

    def __call__(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.spec.search_space)
        config = self.spec.train_config(self.data_dir, params, seed=self.seed_base + trial.number)
        metric = self.spec.objective.metric
        epochs_seen = 0

        def record(epoch: int, metrics: dict) -> bool:
            trial.set_user_attr(epoch_attr(epoch), slim_metrics(metrics))
            value = metrics[metric]
            if value is None or not math.isfinite(value):
                return False  # nothing to compare; the pruner would treat NaN as worst anyway
            trial.report(value, epoch)
            prune = trial.should_prune()
            extra = "".join(f"  {k}={metrics[k]:.4g}" for k in ("train_loss", "epoch_time_s") if isinstance(metrics.get(k), float))
            print(f"  trial {trial.number:3d}  epoch {epoch}  {metric}={value:.4f}{extra}{'  -> pruned' if prune else ''}", flush=True)
            return prune

        def on_epoch(epoch: int, metrics: dict) -> bool:
            nonlocal epochs_seen
            epochs_seen = epoch
            # A database restart mid-trial: the training waits for the reconnect, it is not lost.
            return with_retries(lambda: record(epoch, metrics), what=f"trial {trial.number}: recording epoch {epoch}")

        recorder = TrialRecorder(trial, self.spec, config, self.artifact_dir) if self.artifact_dir else None
        outcome = None
        try:
            outcome = run_trial_process(config, on_epoch, log_path=recorder.log_path if recorder else None, trainer=self.spec.trainer)
        finally:
            if recorder:
                recorder.finish(outcome)
        if outcome.status == "failed":
            trial.set_user_attr("fail_reason", outcome.error)
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "unknown")
        trial.set_user_attr("best_epoch", outcome.best_epoch)
        if outcome.status == "stopped":
            raise optuna.TrialPruned(f"pruned after epoch {epochs_seen}")
        return outcome.best_value

