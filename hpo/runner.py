"""Create or resume a study on RDB storage and run trials until it has n_trials finished ones.

Running it again resumes; several runners on one storage share the study (`hpo workers`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError
from hpo.objective import Objective, TrialFailed
from hpo.pruners import build_pruner
from hpo.samplers import build_sampler
from hpo.spec import StudySpec
from storage import open_storage, redact, with_retries

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def preflight(spec: StudySpec, data_dir: Path) -> dict:
    """Read every split and the model's config before the first trial, so a wrong column or a
    missing model is one line now instead of n failed trials later. Returns data facts."""
    from trainers.data import load_split
    from trainers.model import load_model_config

    data = spec.data_config(data_dir)
    facts: dict = {}
    for name, path in (("train", data.train_path), ("val", data.val_path), ("test", data.test_path)):
        if path is None:
            continue
        split = load_split(path, data, spec.task)
        facts[f"n_{name}"] = len(split.texts)
        if name == "train":
            facts["train_prevalence"] = _prevalence(spec, split.labels)
    load_model_config(spec.model)
    return facts


def _prevalence(spec: StudySpec, labels) -> dict[str, float]:
    import numpy as np

    names = spec.data.label_columns or spec.data.class_names or []
    shares = labels.mean(axis=0) if spec.task == "multi_label" else np.bincount(labels, minlength=len(names)) / len(labels)
    return {n: round(float(s), 4) for n, s in zip(names, shares, strict=True)}


def open_study(spec: StudySpec, storage_url: str, *, heartbeat_interval: int | None = 60) -> optuna.Study:
    """Create the study once, or load it with the spec's sampler and pruner (never the defaults)."""
    storage = open_storage(storage_url, heartbeat_interval=heartbeat_interval)
    return with_retries(
        lambda: optuna.create_study(
            study_name=spec.name,
            storage=storage,
            sampler=build_sampler(spec),
            pruner=build_pruner(spec),
            direction=spec.objective.resolved_direction,
            load_if_exists=True,
        ),
        what=f"open study {spec.name!r} on {redact(storage_url)}",
    )


def describe_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: dict) -> None:
    """Study-level facts the dashboard and reports show."""
    study.set_user_attr("spec_yaml", spec_text)
    study.set_user_attr("objective", f"{spec.objective.metric} ({spec.objective.resolved_direction})")
    study.set_user_attr("task", spec.task)
    study.set_user_attr("model", spec.model.name_or_path)
    for key, value in facts.items():
        study.set_user_attr(key, value)


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(spec: StudySpec, study: optuna.Study, data_dir: Path, max_failures: int | None = None) -> None:
    """Optimise until the study (all workers together) has spec.n_trials finished trials."""
    if n_finished(study) >= spec.n_trials:
        log.info("study %s already has %d finished trials", spec.name, n_finished(study))
        return
    failures = _FailureGuard(max_failures or max(3, spec.n_trials))
    study.optimize(
        Objective(spec, data_dir, seed_base=spec.sampler.seed),
        callbacks=[MaxTrialsCallback(spec.n_trials, states=FINISHED), print_trial, failures],
        catch=(TrialFailed,),
        gc_after_trial=True,
    )
    if failures.tripped:
        raise HpoError(f"study {spec.name}: {failures.count} trials failed in a row; last reason: {failures.last_reason}")


class _FailureGuard:
    """Stops a study whose every trial fails (a bug, not bad luck) instead of looping forever."""

    def __init__(self, limit: int) -> None:
        self.limit, self.count, self.tripped, self.last_reason = limit, 0, False, ""

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL:
            self.count = 0
            return
        self.count += 1
        self.last_reason = _first_line(trial.user_attrs.get("fail_reason"))
        if self.count >= self.limit:
            self.tripped = True
            study.stop()


def print_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    seconds = (trial.duration.total_seconds() if trial.duration else float("nan"))
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        value = f"{trial.intermediate_values[trial.last_step]:.4f}@epoch{trial.last_step}"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
    reason = f"  ({_first_line(trial.user_attrs.get('fail_reason'))})" if trial.state == TrialState.FAIL else ""
    print(f"trial {trial.number:3d}  {trial.state.name:8s} {value:>16s}  {seconds:6.1f}s  {params}{reason}", flush=True)


def _first_line(text: str | None) -> str:
    return (text or "unknown reason").splitlines()[0]


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def print_best(study: optuna.Study) -> None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        print(f"study {study.study_name}: no complete trial yet")
        return
    best = study.best_trial
    params = " ".join(f"{k}={_fmt(v)}" for k, v in best.params.items())
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    print(
        f"best trial {best.number}: {study.user_attrs.get('objective', 'objective')} = {best.value:.4f} "
        f"(epoch {best.user_attrs.get('best_epoch')})  {params}   [{len(done)} complete, {pruned} pruned]",
        flush=True,
    )

