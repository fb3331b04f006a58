"""How many of a study's trials are in each state and how long the finished ones took: what a
worker's progress line needs after every trial, counted by the database in one small query
instead of read trial by trial (a read that sends every running trial again, and through the
storage proxy the costliest call it serves)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy import func, literal_column

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class Tally:
    states: Counter[TrialState] = field(default_factory=Counter)
    timed: int = 0  # finished (COMPLETE or PRUNED) trials with a start and an end
    timed_s: float = 0.0  # their durations added up

    @property
    def finished(self) -> int:
        return sum(self.states[s] for s in _FINISHED)

    @property
    def mean_finished_s(self) -> float | None:
        return self.timed_s / self.timed if self.timed else None

    def to_wire(self) -> dict[str, Any]:
        return {
            "states": {s.name: n for s, n in self.states.items()},
            "timed": self.timed,
            "timed_s": self.timed_s,
        }

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Tally:
        states = Counter({TrialState[name]: int(n) for name, n in body["states"].items()})
        return cls(states, int(body["timed"]), float(body["timed_s"]))


def tally_of(trials: list[FrozenTrial]) -> Tally:
    durations = [t.duration.total_seconds() for t in trials if t.state in _FINISHED and t.duration]
    return Tally(Counter(t.state for t in trials), len(durations), sum(durations))


def study_tally(storage: BaseStorage, study_id: int) -> Tally:
    """From the database where there is one (behind Optuna's cache, or behind the proxy, whose
    client has `tally`); from the trials otherwise."""
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, RDBStorage):
        return query_tally(backend, study_id)
    if hasattr(backend, "tally"):
        return backend.tally(study_id)
    return tally_of(storage.get_all_trials(study_id, deepcopy=False))


def query_tally(storage: RDBStorage, study_id: int) -> Tally:
    trial = models.TrialModel
    columns = trial.__table__.c  # the schema's columns (the model's datetimes are properties)
    seconds = _seconds(
        storage.engine.dialect.name, columns.datetime_start, columns.datetime_complete
    )
    session = storage.scoped_session()
    try:
        rows = (
            session.query(trial.state, func.count(), func.count(seconds), func.sum(seconds))
            .filter(trial.study_id == study_id)
            .group_by(trial.state)
            .all()
        )
    finally:
        storage.scoped_session.remove()
    timed = [(n, s) for state, _, n, s in rows if state in _FINISHED and n]
    return Tally(
        Counter({state: n for state, n, _, _ in rows}),
        sum(n for n, _ in timed),
        sum(float(s) for _, s in timed),
    )


def _seconds(dialect: str, start: Any, end: Any) -> Any:
    """A trial's duration in seconds in SQL (NULL when either end is missing)."""
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    if dialect == "mysql":
        return func.timestampdiff(literal_column("MICROSECOND"), start, end) / 1e6
    return func.nullif(1, 1)  # elsewhere: no estimate of the time left
