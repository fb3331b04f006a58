"""One Optuna trial: suggest parameters, train in a process of its own, report every epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import optuna

from hpo import stored
from hpo.search_space import suggest
from hpo.spec import StudySpec
from hpo.tracking import NO_TRACKING, TrialEvents
from hpo.trial.artifacts import TrialRecorder
from hpo.trial.feasibility import is_own_oom, mark_feasible, prune_as_infeasible
from hpo.trial.process import TrialOutcome, run_trial_process
from storage import WriteBatch, with_retries


class TrialFailed(Exception):
    """The trial's training failed; the reason is in its user attributes and the study goes on."""


@dataclass
class Objective:
    spec: StudySpec
    data_dir: Path
    seed_base: int = 0
    artifact_dir: Path | None = (
        None  # each trial's log, metrics and plots go here; None: none kept
    )
    tracker: TrialEvents = (
        NO_TRACKING  # an experiment tracker (hpo.tracking) hears each trial start and epoch
    )

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        params = suggest(trial, self.spec.search_space)
        config = self.spec.train_config(self.data_dir, params, seed=self.seed_base + trial.number)
        metric = self.spec.objective.metric
        epochs_seen = 0
        writes = WriteBatch(trial.storage)  # kept for the trial: a failed write is sent again
        self.tracker.trial_started(trial, config)

        def record(epoch: int, metrics: dict) -> bool:
            value = metrics[metric]
            reportable = value is not None and math.isfinite(value)
            with writes.collecting():  # the epoch's metrics and value: one write
                trial.set_user_attr(stored.epoch_key(epoch), stored.json_safe(metrics))
                # Optuna refuses report() and should_prune() in multi-objective studies: the
                # epochs are kept as user attributes only.
                if reportable and not self.spec.multi_objective:
                    trial.report(value, epoch)
            writes.flush()
            if not reportable:
                return False  # nothing to compare; the pruner would treat NaN as worst anyway
            # The last epoch is never pruned: its compute is spent, and pruning it would only hide
            # a finished result (successive halving's top rung often falls on it) from selection.
            last = epoch >= config.hyper.epochs_to_run
            prune = not (self.spec.multi_objective or last) and trial.should_prune()
            extra = "".join(
                f"  {k}={metrics[k]:.4g}"
                for k in ("train_loss", "epoch_time_s")
                if isinstance(metrics.get(k), float)
            )
            print(
                f"  trial {trial.number:3d}  epoch {epoch}  {metric}={value:.4f}{extra}{'  -> pruned' if prune else ''}",
                flush=True,
            )
            return prune

        def on_epoch(epoch: int, metrics: dict) -> bool:
            nonlocal epochs_seen
            epochs_seen = epoch
            # A database restart mid-trial: the training waits for the reconnect, it is not lost.
            prune = with_retries(
                lambda: record(epoch, metrics),
                what=f"trial {trial.number}: recording epoch {epoch}",
            )
            self.tracker.epoch_finished(trial, epoch, metrics)
            return prune

        def on_resources(resources: dict) -> None:
            with_retries(lambda: trial.set_user_attr(stored.PEAK_MEMORY_MB, round(resources["peak_device_memory_mb"], 1)),
                         what=f"trial {trial.number}: recording its memory")  # fmt: skip

        recorder = (
            TrialRecorder(trial, self.spec, config, self.artifact_dir)
            if self.artifact_dir
            else None
        )
        try:
            outcome = run_trial_process(
                config,
                on_epoch,
                log_path=recorder.log_path if recorder else None,
                trainer=self.spec.trainer,
                on_resources=on_resources,
            )
        except BaseException:
            if recorder:
                recorder.finish(None)
            raise
        try:
            with writes.collecting():  # the trial's record and result: one write
                if recorder:
                    recorder.finish(outcome)
                return self._result(trial, outcome, epochs_seen)
        finally:
            with_retries(writes.flush, what=f"trial {trial.number}: recording its result")

    def _result(
        self, trial: optuna.Trial, outcome: TrialOutcome, epochs_seen: int
    ) -> float | list[float]:
        """The trial's value(s) from a finished training process, or the exception that ends it."""
        metric = self.spec.objective.metric
        if outcome.status == "failed" and is_own_oom(trial, outcome.error):
            raise prune_as_infeasible(trial, outcome.error)
        if outcome.status == "failed":
            trial.set_user_attr(stored.FAIL_REASON, outcome.error)
            raise TrialFailed(outcome.error.splitlines()[0] if outcome.error else "unknown")
        trial.set_user_attr(stored.BEST_EPOCH, outcome.best_epoch)
        mark_feasible(trial)
        if outcome.status == "stopped":
            raise optuna.TrialPruned(f"pruned after epoch {epochs_seen}")
        if self.spec.multi_objective:
            return self._deployed_values(trial, outcome.extras.get("deployed") or {})
        value = outcome.best_value
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            reason = f"the trial's {metric} is {value!r} in every epoch: nothing to compare"
            trial.set_user_attr(stored.FAIL_REASON, reason)
            raise TrialFailed(reason)
        return float(value)

    def _deployed_values(self, trial: optuna.Trial, deployed: dict) -> list[float]:
        """Each objective from the model measured as deployed (int8 when the trial asks for it)."""
        trial.set_user_attr(stored.DEPLOYED, stored.json_safe(deployed))
        missing = [o.metric for o in self.spec.all_objectives if deployed.get(o.metric) is None]
        if missing:
            reason = f"the trainer measured no {missing} after training"
            trial.set_user_attr(stored.FAIL_REASON, reason)
            raise TrialFailed(reason)
        return [float(deployed[o.metric]) for o in self.spec.all_objectives]
