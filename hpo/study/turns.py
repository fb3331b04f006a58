"""Turns at a shared study: exactly n_trials finished trials however many workers run it, and
never one grid point twice.

Optuna alone overshoots: MaxTrialsCallback stops a worker only after its own trial ends, so k
workers that start together near the end finish up to k-1 extra trials; GridSampler gives one
point to two workers once trials fail or are retried, so grid points are queued here instead.
Here a worker fails stale trials (their retries join the queue) and, when a trial may start,
takes a study-wide lock, counts finished and running trials, queues the next free grid point,
and creates its trial before it lets go: every count it acts on is exact. Through the storage
proxy the common turn (no grid, budget or GPU packing, no stale trial) is one call instead: the
proxy counts and creates under the lock itself.

The lock (hpo.study.lock) is freed by the server, the kernel or the storage proxy when a killed
worker dies.
"""

from __future__ import annotations

import enum
import itertools
import math
import random
import time
import warnings
from collections import Counter
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from hpo.search_space import grid
from hpo.spec import StudySpec
from hpo.study import placement
from hpo.study.budget import BudgetCheck, check_budget
from hpo.study.lock import study_lock
from hpo.trial.feasibility import counts_as_finished

STALE_CHECK_S = 2.0  # how often a waiting worker looks for stale trials (under the lock)


class Turn(enum.Enum):
    RUN = "run"  # start a trial now (ask pops a queued one first)
    WAIT = "wait"  # every open slot holds a running trial, which may still fail or go stale
    DONE = "done"  # the study has n_trials finished trials
    OUT_OF_TIME = "out_of_time"  # the next trial would end after the study's time budget


class TrialSlots:
    """Decides, under the study lock, whether a worker may start a trial."""

    def __init__(self, study: optuna.Study, spec: StudySpec) -> None:
        self.study = study
        self.n_trials = spec.n_trials
        self.grid = grid_points(spec) if spec.sampler.type == "grid" else None
        self.lock = study_lock(study)
        self.gpu = placement.Gpu.from_env()  # packing several trials per GPU by measured memory
        self.budget_min = spec.budget.minutes if spec.budget else None
        self.budget: BudgetCheck | None = None  # the last check, for the console line
        self._stale_checked = (
            -math.inf
        )  # when this worker last failed stale trials, under the lock

    def peek(self) -> Turn:
        """Without the lock: count. DONE and WAIT hold until the next look (trials only finish or
        fail meanwhile), so a waiting worker rarely takes the lock; RUN is decided again by
        `next_turn`, under it. Every STALE_CHECK_S a waiting worker still goes through the lock,
        where stale trials are failed: failing one and queueing its retry are two writes, and a
        worker counting between them would start a new trial in the retry's place."""
        if time.monotonic() - self._stale_checked >= STALE_CHECK_S:
            return Turn.RUN
        return self._count(self.study.get_trials(deepcopy=False))

    @property
    def _needs_trials(self) -> bool:
        """Grids, budgets and GPU packing decide a turn from the trials themselves, not counts."""
        return bool(self.grid) or self.budget_min is not None or self.gpu is not None

    def claim(self) -> Turn | None:
        """The turn in one call to the storage proxy, no lock held here (its `claim_trial`): RUN
        with a trial taken for this worker's next ask, or WAIT or DONE as counted. None where
        the turn must take the lock: another storage; a grid, a budget or GPU packing, which
        need the trials themselves; a stale trial to fail (failing it and queueing its retry
        are two writes, counted by nobody in between); or room the proxy's count cannot see
        (it counts infeasible trials as finished)."""
        storage = self.study._storage
        claim_trial = getattr(storage, "claim_trial", None)
        if claim_trial is None or self._needs_trials:
            return None
        if time.monotonic() - self._stale_checked >= STALE_CHECK_S:
            self._stale_checked = time.monotonic()
            if storage._get_stale_trial_ids(self.study._study_id):
                self._stale_checked = -math.inf  # the lock's turn fails them now
                return None
        if claim_trial(self.study._study_id, self.n_trials):
            return Turn.RUN
        turn = self._count(self.study.get_trials(deepcopy=False))
        return None if turn is Turn.RUN else turn

    def next_turn(self) -> Turn:
        """Call with `lock` held; on RUN, keep holding it until the new trial exists."""
        with warnings.catch_warnings():  # fail_stale_trials is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)  # its retries join the queue
        self._stale_checked = time.monotonic()
        if self._counted_room():
            return Turn.RUN
        trials = self.study.get_trials(deepcopy=False)
        turn = self._count(trials)
        if (
            turn is Turn.RUN
            and self.grid is not None
            and not any(t.state == TrialState.WAITING for t in trials)
        ):
            point = self._free_point(trials)
            if point is None:
                return Turn.WAIT
            self.study.enqueue_trial(point)
        return turn

    def _counted_room(self) -> bool:
        """A storage that counts states by itself (the proxy's) answers the common case without
        reading every trial under the lock: its count of finished trials includes infeasible
        ones, so it can only overstate them, and room it sees is room. Grids, budgets and GPU
        packing need the trials themselves."""
        count_states = getattr(self.study._storage, "count_states", None)
        if count_states is None or self._needs_trials:
            return False
        states = count_states(self.study._study_id)
        finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        return finished + states[TrialState.RUNNING] < self.n_trials

    def _count(self, trials: list[FrozenTrial]) -> Turn:
        states = Counter(t.state for t in trials)
        finished = sum(counts_as_finished(t) for t in trials)  # an out-of-memory trial is not one
        if finished >= self.n_trials:
            return Turn.DONE
        if finished + states[TrialState.RUNNING] >= self.n_trials:
            return Turn.WAIT
        if self.budget_min is not None:
            self.budget = check_budget(self.study, self.budget_min, trials)
            if not self.budget.fits:
                return Turn.OUT_OF_TIME
        if self.gpu is not None and not self._gpu_has_room(trials):
            return Turn.WAIT
        return Turn.RUN

    def _gpu_has_room(self, trials: list[FrozenTrial]) -> bool:
        assert self.gpu is not None
        running = placement.running_on(self.gpu, trials)
        return placement.admits(
            self.gpu, running, placement.expected_peak(trials), placement.next_queued_alone(trials)
        )

    def _free_point(self, trials: list[FrozenTrial]) -> dict[str, Any] | None:
        """The first grid point no trial holds (finished, running or queued); failed ones last."""
        assert self.grid is not None
        names = list(self.grid[0])
        held = {_key(_params(t), names) for t in trials if t.state != TrialState.FAIL}
        failures = Counter(_key(_params(t), names) for t in trials if t.state == TrialState.FAIL)
        free = [p for p in self.grid if _key(p, names) not in held]
        return min(free, key=lambda p: failures[_key(p, names)], default=None)


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every grid point, shuffled by the sampler's seed so a partial grid is a random subset."""
    axes = grid(spec)
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    random.Random(spec.sampler.seed).shuffle(points)
    return points


def _params(trial: FrozenTrial) -> dict[str, Any]:
    # A trial just popped from the queue has not suggested yet: its point is in fixed_params.
    return {**trial.system_attrs.get("fixed_params", {}), **trial.params}


def _key(params: dict[str, Any], names: list[str]) -> tuple:
    return tuple(params.get(n) for n in names)
