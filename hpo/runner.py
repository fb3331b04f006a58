"""Create or resume a study on RDB storage and run trials until it has n_trials finished ones.

Running it again resumes; several runners on one storage share the study (`hpo workers`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import OperationalError

from hpo.errors import HpoError
from hpo.objective import Objective, TrialFailed
from hpo.pruners import build_pruner
from hpo.samplers import build_sampler
from hpo.slots import TrialSlots, Turn
from hpo.spec import StudySpec
from storage import open_storage, redact, with_retries

log = logging.getLogger(__name__)
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # each trial's user attr "worker"
_TAG = f"{os.environ['HPO_WORKER']} " if os.environ.get("HPO_WORKER") else ""  # `hpo workers` labels its lines


def preflight(spec: StudySpec, data_dir: Path) -> dict:
    """Read every split and the model's config before the first trial, so a wrong column or a
    missing model is one line now instead of n failed trials later. Returns data facts."""
    from hpo.trial_process import load_trainer
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
    load_trainer(spec.trainer)
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


# The resolved spec a study was started from, minus what may change on resume (n_trials: run more).
SPEC_ATTR = "spec_resolved"


def _comparable(spec: StudySpec) -> dict:
    return spec.model_dump(mode="json", exclude={"n_trials", "description"})


def check_same_spec(study: optuna.Study, spec: StudySpec, storage_url: str) -> None:
    """One study, one search: resuming a study with a changed spec would mix its trials silently."""
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None or not study.get_trials(deepcopy=False):
        return
    current = _comparable(spec)
    changed = [path for key in sorted(set(stored) | set(current)) for path in _changed(key, stored.get(key), current.get(key))]
    if changed:
        url = redact(storage_url)
        raise HpoError(
            f"study {spec.name!r} on {url} was started from a different spec ({', '.join(changed)} changed); "
            f"delete it (optuna delete-study --study-name {spec.name} --storage {url}) or give the spec a new name"
        )


def _changed(key: str, old: object, new: object) -> list[str]:
    """`key`, or `key.sub` for each changed entry when both sides are mappings."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return [f"{key}.{k}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return [key]


def describe_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: dict) -> None:
    """Study-level facts the dashboard and reports show."""
    study.set_user_attr("spec_yaml", spec_text)
    study.set_user_attr(SPEC_ATTR, _comparable(spec))
    study.set_user_attr("objective", f"{spec.objective.metric} ({spec.objective.resolved_direction})")
    study.set_user_attr("task", spec.task)
    study.set_user_attr("model", spec.model.name_or_path)
    for key, value in facts.items():
        study.set_user_attr(key, value)
    from hpo.dashboard import annotate_study

    annotate_study(study, spec, spec_text, facts)


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def run_study(
    spec: StudySpec,
    study: optuna.Study,
    data_dir: Path,
    max_failures: int | None = None,
    artifact_dir: Path | None = None,
    poll_s: float = 1.0,
) -> None:
    """Optimise until the study (all workers together) has exactly spec.n_trials finished
    trials (hpo.slots); each trial's files go to the artifact store at `artifact_dir`
    (storage.default_artifact_dir). Near the end a worker with no trial to start polls every
    `poll_s` seconds until the others finish, taking over any of their trials that fail."""
    if n_finished(study) >= spec.n_trials:
        log.info("study %s already has %d finished trials", spec.name, n_finished(study))
        return
    if os.environ.get("HPO_WORKER") or study.get_trials(deepcopy=False):
        # Every worker (and a resumed run) builds the same seeded sampler: unless reseeded, it
        # would repeat the other workers' (or the earlier run's) suggestions.
        study.sampler.reseed_rng()
    failures = _FailureGuard(max_failures or max(3, spec.n_trials))
    objective = Objective(spec, data_dir, seed_base=spec.sampler.seed, artifact_dir=artifact_dir)
    slots = TrialSlots(study, spec)
    waiting = False
    while not failures.tripped:
        # A database restart fails this turn; the next ones wait for it to come back. A trial whose
        # result could not be stored stays RUNNING until its heartbeat goes stale and it is retried.
        turn = with_retries(
            lambda: _take_turn(study, slots, objective, failures), attempts=8, what=f"study {spec.name}", retry_if=_db_outage
        )
        if turn is Turn.DONE:
            break
        if turn is Turn.WAIT and not waiting:
            log.info("study %s: the remaining trials are running elsewhere; waiting in case one fails", spec.name)
        waiting = turn is Turn.WAIT
        if waiting:
            time.sleep(poll_s)
    if failures.tripped:
        raise HpoError(f"study {spec.name}: {failures.count} trials failed in a row; last reason: {failures.last_reason}")


def _take_turn(study: optuna.Study, slots: TrialSlots, objective: Objective, failures: _FailureGuard) -> Turn:
    """One trial (or none) under the study lock, which is held until the trial exists."""
    slots.lock.acquire()
    try:
        turn = slots.next_turn()
        if turn is Turn.RUN:
            run = _Admitted(objective, slots)
            try:
                # No gc_after_trial: training ran in its own process, and a collection costs ~0.3 s.
                study.optimize(run, n_trials=1, callbacks=[print_trial, failures], catch=(TrialFailed,))
            except Exception:
                if run.taken_over is None:
                    raise
                log.warning("trial %d was failed by another worker while it ran here (its heartbeat was late); "
                            "it is retried with the same parameters", run.taken_over)
        return turn
    finally:
        slots.lock.release()


def _db_outage(e: BaseException | None) -> bool:
    """A lost database connection, however Optuna wrapped it: when its tell fails, Optuna 5 can
    even end in an UnboundLocalError raised while handling the OperationalError."""
    while e is not None:
        if isinstance(e, OperationalError):
            return True
        e = e.__cause__ or e.__context__
    return False


class _Admitted:
    """The objective of a trial created under the study lock: frees the lock, then runs it."""

    def __init__(self, objective: Objective, slots: TrialSlots) -> None:
        self.objective, self.slots = objective, slots
        self.taken_over: int | None = None  # the trial's number, if another worker failed it meanwhile

    def __call__(self, trial: optuna.Trial) -> float:
        self.slots.lock.release()  # the trial exists: every other worker counts it from now on
        trial.set_user_attr("worker", WORKER)
        if os.environ.get("CUDA_VISIBLE_DEVICES"):
            trial.set_user_attr("gpu", os.environ["CUDA_VISIBLE_DEVICES"])
        try:
            return self.objective(trial)
        except UpdateFinishedTrialError:
            self.taken_over = trial.number  # Optuna's tell fails next; the retry runs elsewhere
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (hpo.cli): Optuna marks the trial FAIL
            trial.set_user_attr("fail_reason", "interrupted: the worker was stopped (Ctrl-C or SIGTERM)")
            raise


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
    print(f"{_TAG}trial {trial.number:3d}  {trial.state.name:8s} {value:>16s}  {seconds:6.1f}s  {params}{reason}", flush=True)


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

