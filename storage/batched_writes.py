"""Writes a worker makes in a row, sent together: one call to the storage proxy, or one database
transaction, instead of one each.

An epoch's metrics and its reported value, or a finished trial's record (its artifacts, dashboard
note, headline metrics, best epoch), are a handful of writes each. Through the proxy every write
is a round trip and a transaction in the one process that serves every worker; on SQLite every
transaction is a sync to disk.

`WriteBatch(storage)`: the trial attributes, intermediate values and study system attributes
this thread writes inside `with batch.collecting():` wait in the batch, and `batch.flush()` sends
them. A flush that fails keeps them, so retrying it, or a retried caller's next flush, still
sends every one: Optuna's Trial remembers a step as reported as soon as `report` returns and
does not send it again. Other threads (the heartbeat) write at once; so does every storage
without `BatchedWrites` (Optuna's in-memory and journal storages).
"""

from __future__ import annotations

import enum
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session


class WriteKind(str, enum.Enum):
    TRIAL_USER_ATTR = "trial_user_attr"
    TRIAL_SYSTEM_ATTR = "trial_system_attr"
    INTERMEDIATE_VALUE = "intermediate_value"  # key: the step
    STUDY_SYSTEM_ATTR = "study_system_attr"  # owner: the study


@dataclass(frozen=True)
class Write:
    kind: WriteKind
    owner_id: int  # the trial's id; the study's for a study attribute
    key: str
    value_json: str  # encoded when written, so a value JSON cannot hold fails where it is set

    def to_wire(self) -> list:
        return [self.kind.value, self.owner_id, self.key, self.value_json]

    @classmethod
    def from_wire(cls, item: list) -> Write:
        kind, owner_id, key, value_json = item
        return cls(WriteKind(kind), int(owner_id), str(key), str(value_json))


_local = threading.local()  # .batch: the WriteBatch collecting in this thread, if any


class BatchedWrites:
    """A storage's four writes, collected while a WriteBatch on it collects in this thread; put
    it before the storage in the bases, and give it `apply_writes`."""

    def apply_writes(self, writes: list[Write]) -> None:
        raise NotImplementedError

    def _collected(self, kind: WriteKind, owner_id: int, key: Any, value: Any) -> bool:
        batch = getattr(_local, "batch", None)
        if batch is None or batch.backend is not self:
            return False
        batch.pending.append(Write(kind, owner_id, str(key), json.dumps(value)))
        return True

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._collected(WriteKind.TRIAL_USER_ATTR, trial_id, key, value):
            super().set_trial_user_attr(trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        if not self._collected(WriteKind.TRIAL_SYSTEM_ATTR, trial_id, key, value):
            super().set_trial_system_attr(trial_id, key, value)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        if not self._collected(WriteKind.INTERMEDIATE_VALUE, trial_id, step, intermediate_value):
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        if not self._collected(WriteKind.STUDY_SYSTEM_ATTR, study_id, key, value):
            super().set_study_system_attr(study_id, key, value)


class WriteBatch:
    def __init__(self, storage: BaseStorage) -> None:
        backend = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
        self.backend = backend if isinstance(backend, BatchedWrites) else None
        self.pending: list[Write] = []

    @contextmanager
    def collecting(self) -> Iterator[None]:
        outer = getattr(_local, "batch", None)
        _local.batch = self if self.backend is not None else None
        try:
            yield
        finally:
            _local.batch = outer

    def flush(self) -> None:
        if self.pending:
            assert self.backend is not None
            self.backend.apply_writes(list(self.pending))
            self.pending.clear()


def write_in_one_transaction(storage: RDBStorage, writes: list[Write]) -> None:
    """Each write as RDBStorage makes it, all in one transaction: KeyError for a missing trial,
    UpdateFinishedTrialError for a finished one, and then none of them is made.

    On PostgreSQL and SQLite the batch is set-based: one read of its trials' states, one of its
    studies, and one upsert per table, executed with all its rows at once; RDBStorage spends a
    trial read and a statement on every write, and behind the storage proxy that per-write ORM
    work was most of the proxy's CPU. Later writes of one key win, as one by one. Other
    databases get RDBStorage's own code, write by write."""
    with _create_scoped_session(storage.scoped_session, True) as session:
        if _upsert_dialect(storage.engine.name) is None:
            _one_by_one(storage, session, writes)
            return
        _check_owners(storage, session, writes)
        for model, rows in _rows_by_table(writes).items():
            session.execute(_upsert(storage.engine.name, model), rows)


def _upsert_dialect(engine_name: str):
    if engine_name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql
    if engine_name == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0):  # ON CONFLICT
        from sqlalchemy.dialects import sqlite

        return sqlite
    return None


_KEYS = {  # each table's unique key and the columns a later write replaces
    models.TrialUserAttributeModel: (("trial_id", "key"), ("value_json",)),
    models.TrialSystemAttributeModel: (("trial_id", "key"), ("value_json",)),
    models.TrialIntermediateValueModel: (
        ("trial_id", "step"),
        ("intermediate_value", "intermediate_value_type"),
    ),
    models.StudySystemAttributeModel: (("study_id", "key"), ("value_json",)),
}
_MODELS = {
    WriteKind.TRIAL_USER_ATTR: models.TrialUserAttributeModel,
    WriteKind.TRIAL_SYSTEM_ATTR: models.TrialSystemAttributeModel,
    WriteKind.INTERMEDIATE_VALUE: models.TrialIntermediateValueModel,
    WriteKind.STUDY_SYSTEM_ATTR: models.StudySystemAttributeModel,
}


@functools.cache
def _upsert(engine_name: str, model: type) -> Any:
    """INSERT … ON CONFLICT (key) DO UPDATE, built once per table: SQLAlchemy compiles it once
    and the driver executes it for every row of a batch."""
    key, replaced = _KEYS[model]
    insert = _upsert_dialect(engine_name).insert(model.__table__)  # Core: no ORM bulk path
    return insert.on_conflict_do_update(
        index_elements=list(key), set_={c: getattr(insert.excluded, c) for c in replaced}
    )


def _check_owners(storage: RDBStorage, session: Any, writes: list[Write]) -> None:
    """Optuna's errors, raised before anything is written: KeyError for a trial or study that
    does not exist, UpdateFinishedTrialError for a finished trial."""
    trial_ids = {w.owner_id for w in writes if w.kind is not WriteKind.STUDY_SYSTEM_ATTR}
    study_ids = {w.owner_id for w in writes if w.kind is WriteKind.STUDY_SYSTEM_ATTR}
    trial, study = models.TrialModel, models.StudyModel
    states = dict(
        session.query(trial.trial_id, trial.state).filter(trial.trial_id.in_(trial_ids)).all()
        if trial_ids
        else ()
    )
    for trial_id in sorted(trial_ids):
        if trial_id not in states:
            raise KeyError(models.NOT_FOUND_MSG)
        storage.check_trial_is_updatable(trial_id, states[trial_id])
    found = (
        {i for (i,) in session.query(study.study_id).filter(study.study_id.in_(study_ids)).all()}
        if study_ids
        else set()
    )
    if study_ids - found:
        raise KeyError(models.NOT_FOUND_MSG)


def _rows_by_table(writes: list[Write]) -> dict[type, list[dict]]:
    """Each table's rows, the last write of a key replacing earlier ones (one statement cannot
    touch a row twice)."""
    tables: dict[type, dict[tuple, dict]] = {}
    for w in writes:
        model = _MODELS[w.kind]
        if w.kind is WriteKind.INTERMEDIATE_VALUE:
            value, kind = models.TrialIntermediateValueModel.intermediate_value_to_stored_repr(
                json.loads(w.value_json)
            )
            row = {"trial_id": w.owner_id, "step": int(w.key), "intermediate_value": value,
                   "intermediate_value_type": kind}  # fmt: skip
        else:
            owner = "study_id" if w.kind is WriteKind.STUDY_SYSTEM_ATTR else "trial_id"
            row = {owner: w.owner_id, "key": w.key, "value_json": w.value_json}
        key = tuple(row[c] for c in _KEYS[model][0])
        tables.setdefault(model, {})[key] = row
    return {model: list(rows.values()) for model, rows in tables.items()}


def _one_by_one(storage: RDBStorage, session: Any, writes: list[Write]) -> None:
    for w in writes:
        value = json.loads(w.value_json)
        if w.kind is WriteKind.INTERMEDIATE_VALUE:
            storage._set_trial_intermediate_value_without_commit(
                session, w.owner_id, int(w.key), value
            )
        elif w.kind is WriteKind.STUDY_SYSTEM_ATTR:
            _set_study_system_attr(session, w.owner_id, w.key, w.value_json)
        else:
            storage._set_trial_attr_without_commit(
                session, _MODELS[w.kind], w.owner_id, w.key, value
            )


def _set_study_system_attr(session: Any, study_id: int, key: str, value_json: str) -> None:
    """RDBStorage.set_study_system_attr without its commit (Optuna has no such helper)."""
    study = models.StudyModel.find_or_raise_by_id(study_id, session)
    attribute = models.StudySystemAttributeModel.find_by_study_and_key(study, key, session)
    if attribute is None:
        session.add(
            models.StudySystemAttributeModel(study_id=study_id, key=key, value_json=value_json)
        )
    else:
        attribute.value_json = value_json
