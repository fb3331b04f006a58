"""Run trials until the study (all workers together) has n_trials finished ones.

Running it again resumes; several runners on one storage share the study (`hpo workers`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from functools import partial
from pathlib import Path

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import OperationalError

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec
from hpo.study.console import first_line, print_trial, quiet_trial_failures
from hpo.study.opening import n_finished
from hpo.study.placement import requeue_alone_after_oom
from hpo.study.turns import TrialSlots, Turn
from hpo.tracking import NO_TRACKING, TrialEvents
from hpo.trial.objective import Objective, TrialFailed
from storage import with_retries
from storage.outage import is_proxy_outage

log = logging.getLogger(__name__)
WORKER = f"{socket.gethostname()}:{os.getpid()}"


def run_study(
    spec: StudySpec,
    study: optuna.Study,
    data_dir: Path,
    max_failures: int | None = None,
    artifact_dir: Path | None = None,
    poll_s: float = 1.0,
    tracker: TrialEvents = NO_TRACKING,
) -> None:
    """Optimise until the study (all workers together) has exactly spec.n_trials finished
    trials (hpo.slots); each trial's files go to the artifact store at `artifact_dir`
    (storage.default_artifact_dir). Near the end a worker with no trial to start polls every
    `poll_s` seconds until the others finish, taking over any of their trials that fail.
    `tracker` (hpo.tracking) hears every trial's start, epochs and end."""
    if n_finished(study) >= spec.n_trials:
        log.info("study %s already has %d finished trials", spec.name, n_finished(study))
        tracker.study_stopped(study, spec.n_trials)
        return
    quiet_trial_failures()
    if os.environ.get("HPO_WORKER") or study.get_trials(deepcopy=False):
        # Every worker (and a resumed run) builds the same seeded sampler: unless reseeded, it
        # would repeat the other workers' (or the earlier run's) suggestions.
        study.sampler.reseed_rng()
    failures = _FailureGuard(max_failures or max(3, spec.n_trials))
    objective = Objective(
        spec, data_dir, seed_base=spec.sampler.seed, artifact_dir=artifact_dir, tracker=tracker
    )
    slots = TrialSlots(study, spec)
    waiting = False
    while not failures.tripped:
        # A database restart fails this turn; the next ones wait for it to come back. A trial whose
        # result could not be stored stays RUNNING until its heartbeat goes stale and it is retried.
        turn = with_retries(
            lambda: _take_turn(study, slots, objective, failures),
            attempts=8,
            what=f"study {spec.name}",
            retry_if=_db_outage,
        )
        if turn is Turn.DONE:
            break
        if turn is Turn.OUT_OF_TIME:
            print(slots.budget.message(spec.name), flush=True)
            break
        if turn is Turn.WAIT and not waiting:
            log.info(
                "study %s: the remaining trials are running elsewhere; waiting in case one fails",
                spec.name,
            )
        waiting = turn is Turn.WAIT
        if waiting:
            time.sleep(poll_s)
    tracker.study_stopped(study, spec.n_trials)
    if failures.tripped:
        raise HpoError(
            f"study {spec.name}: {failures.count} trials failed in a row; last reason: {failures.last_reason}"
        )


def _take_turn(
    study: optuna.Study, slots: TrialSlots, objective: Objective, failures: _FailureGuard
) -> Turn:
    """One trial (or none): claimed from the storage proxy in one call, or under the study
    lock, which is held until the trial exists."""
    if (seen := slots.peek()) is not Turn.RUN:
        return seen
    if (claimed := slots.claim()) is not None:
        if claimed is Turn.RUN:
            _run_one(study, slots, objective, failures)
        return claimed
    slots.lock.acquire()
    try:
        turn = slots.next_turn()
        if turn is Turn.RUN:
            _run_one(study, slots, objective, failures)
        return turn
    finally:
        slots.lock.release()


def _run_one(
    study: optuna.Study, slots: TrialSlots, objective: Objective, failures: _FailureGuard
) -> None:
    """The admitted trial, through Optuna's own loop (ask, heartbeat, tell, callbacks)."""
    run = _Admitted(objective, slots)
    try:
        # No gc_after_trial: training ran in its own process, and a collection costs ~0.3 s.
        callbacks = [
            partial(print_trial, n_trials=slots.n_trials, budget_min=slots.budget_min),
            failures,
            requeue_alone_after_oom,
            objective.tracker.trial_finished,
        ]
        study.optimize(run, n_trials=1, callbacks=callbacks, catch=(TrialFailed,))
    except Exception:
        if run.taken_over is None:
            raise
        log.warning(
            "trial %d was failed by another worker while it ran here (its heartbeat was late); "
            "it is retried with the same parameters",
            run.taken_over,
        )


def _db_outage(e: BaseException | None) -> bool:
    """A lost database connection (or link to the storage proxy), however Optuna wrapped it: when
    its tell fails, Optuna 5 can even end in an UnboundLocalError raised while handling it."""
    while e is not None:
        if isinstance(e, OperationalError) or is_proxy_outage(e):
            return True
        e = e.__cause__ or e.__context__
    return False


class _Admitted:
    """The objective of a trial created under the study lock: frees the lock, then runs it."""

    def __init__(self, objective: Objective, slots: TrialSlots) -> None:
        self.objective, self.slots = objective, slots
        self.taken_over: int | None = (
            None  # the trial's number, if another worker failed it meanwhile
        )

    def __call__(self, trial: optuna.Trial) -> float:
        # When trials are packed on a GPU, where this one runs is written before the lock is
        # freed: a worker packing trials on the same GPU counts it from its first moment.
        # Otherwise the lock is freed first: every call made holding it delays every worker.
        # A trial failed by another worker before its first write (its worker was cut off for
        # longer than the grace period) is taken over like one failed while it trains.
        packed = self.slots.gpu is not None
        try:
            if not packed:
                self.slots.lock.release()  # the trial exists: every worker counts it from now on
            trial.set_user_attr(stored.WORKER, WORKER)
            if os.environ.get("CUDA_VISIBLE_DEVICES"):
                trial.set_user_attr(stored.GPU, os.environ["CUDA_VISIBLE_DEVICES"])
            if packed:
                self.slots.lock.release()
            return self.objective(trial)
        except UpdateFinishedTrialError:
            self.taken_over = trial.number  # Optuna's tell fails next; the retry runs elsewhere
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (hpo.cli): Optuna marks the trial FAIL
            trial.set_user_attr(
                stored.FAIL_REASON, "interrupted: the worker was stopped (Ctrl-C or SIGTERM)"
            )
            self.objective.tracker.trial_interrupted(trial.number)
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
        self.last_reason = first_line(trial.user_attrs.get(stored.FAIL_REASON))
        if self.count >= self.limit:
            self.tripped = True
            study.stop()
