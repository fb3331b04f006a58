"""Turns at a shared study: exactly n_trials finished trials however many workers run it, and
never one grid point twice.

Optuna alone overshoots: MaxTrialsCallback stops a worker only after its own trial ends, so k
workers that start together near the end finish up to k-1 extra trials; GridSampler gives one
point to two workers once trials fail or are retried, so grid points are queued here instead.
Here a worker fails stale trials (their retries join the queue) and, when a trial may start,
takes a study-wide lock, counts finished and running trials, queues the next free grid point,
and creates its trial before it lets go: every count it acts on is exact.

The lock (hpo.study.lock) is freed by the server, the kernel or the storage proxy when a killed
worker dies.
"""

from __future__ import annotations

import enum
import itertools
import random
import warnings
from collections import Counter
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from hpo.search_space import grid
from hpo.spec import StudySpec
from hpo.study.lock import study_lock


class Turn(enum.Enum):
    RUN = "run"  # start a trial now (ask pops a queued one first)
    WAIT = "wait"  # every open slot holds a running trial, which may still fail or go stale
    DONE = "done"  # the study has n_trials finished trials


class TrialSlots:
    """Decides, under the study lock, whether a worker may start a trial."""

    def __init__(self, study: optuna.Study, spec: StudySpec) -> None:
        self.study = study
        self.n_trials = spec.n_trials
        self.grid = grid_points(spec) if spec.sampler.type == "grid" else None
        self.lock = study_lock(study)

    def peek(self) -> Turn:
        """Without the lock: count, and fail stale trials (their retries join the queue). DONE and
        WAIT hold until the next look (trials only finish or fail meanwhile), so a worker that
        waits never takes the lock; RUN is decided again by `next_turn`, under it. The trials
        are read once: a storage may find stale ones in what was just read (storage.proxy_client)."""
        trials = self.study.get_trials(deepcopy=False)
        with warnings.catch_warnings():  # fail_stale_trials is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        return self._count(trials)

    def next_turn(self) -> Turn:
        """Call with `lock` held; on RUN, keep holding it until the new trial exists. A storage
        that counts states by itself (the proxy's) spares reading every trial under the lock."""
        count_states = getattr(self.study._storage, "count_states", None)
        if count_states is not None and self.grid is None:
            return self._turn(count_states(self.study._study_id))
        trials = self.study.get_trials(deepcopy=False)
        turn = self._count(trials)
        if turn is Turn.RUN and self.grid is not None and not any(t.state == TrialState.WAITING for t in trials):
            point = self._free_point(trials)
            if point is None:
                return Turn.WAIT
            self.study.enqueue_trial(point)
        return turn

    def _count(self, trials: list[FrozenTrial]) -> Turn:
        return self._turn(Counter(t.state for t in trials))

    def _turn(self, states: Counter[TrialState]) -> Turn:
        finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        if finished >= self.n_trials:
            return Turn.DONE
        if finished + states[TrialState.RUNNING] >= self.n_trials:
            return Turn.WAIT
        return Turn.RUN

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
