"""Turns at a shared study: exactly n_trials finished trials however many workers run it, and
never one grid point twice.

Optuna alone overshoots: MaxTrialsCallback stops a worker only after its own trial ends, so k
workers that start together near the end finish up to k-1 extra trials; GridSampler gives one
point to two workers once trials fail or are retried, so grid points are queued here instead. Here a worker takes a study-wide lock,
fails stale trials (their retries join the queue), counts finished and running trials, queues
the next free grid point, and creates its trial before it lets go: every count it sees is exact.

The lock is a PostgreSQL advisory lock, which the server frees when a killed worker's connection
drops, or an flock beside a SQLite file, which the kernel frees when its holder dies.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import itertools
import os
import random
import threading
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from hpo.search_space import grid
from hpo.spec import StudySpec

_PG_LOCK_CLASS = 0x4850  # first key of PostgreSQL's two-key advisory lock; the second is the study id


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

    def next_turn(self) -> Turn:
        """Call with `lock` held; on RUN, keep holding it until the new trial exists."""
        with warnings.catch_warnings():  # fail_stale_trials is "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        states = Counter(t.state for t in trials)
        finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        if finished >= self.n_trials:
            return Turn.DONE
        if finished + states[TrialState.RUNNING] >= self.n_trials:
            return Turn.WAIT
        if self.grid is not None and not states[TrialState.WAITING]:
            point = self._free_point(trials)
            if point is None:
                return Turn.WAIT
            self.study.enqueue_trial(point)
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


# --- the study lock ---------------------------------------------------------------------------


def study_lock(study: optuna.Study) -> _PostgresLock | _FileLock | _LocalLock:
    """PostgreSQL: an advisory lock; a SQLite file: an flock on `<file>.lock`; anything else
    (SQLite in memory): a lock within this process only."""
    storage = study._storage  # an RDBStorage from hpo.runner.open_study, in Optuna's cache layer
    engine: Engine = getattr(storage, "_backend", storage).engine
    if engine.dialect.name == "postgresql":
        return _PostgresLock(engine, study._study_id)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return _FileLock(Path(f"{database}.lock"))
    return _LocalLock()


class _PostgresLock:
    def __init__(self, engine: Engine, study_id: int) -> None:
        self.engine, self.study_id = engine, study_id
        self._conn: Connection | None = None

    def acquire(self) -> None:
        conn = self.engine.connect()
        try:
            conn.execute(text("SELECT pg_advisory_xact_lock(:c, :s)"), {"c": _PG_LOCK_CLASS, "s": self.study_id})
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()  # ends the transaction, which frees the lock
            conn.close()
        except SQLAlchemyError:  # the connection died, and the server freed the lock with it
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the flock


class _LocalLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False

    def acquire(self) -> None:
        self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
