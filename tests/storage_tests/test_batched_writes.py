"""Writes sent together and trials counted by the database: on SQLite and PostgreSQL directly,
and through a real storage proxy in front of each."""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from collections.abc import Iterator

import optuna
import pytest
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from storage import WriteBatch, open_storage, proxy_address
from storage.batched_writes import BatchedWrites
from storage.proxy_client import open_proxy
from storage.tally import study_tally, tally_of
from tests.proxy_support import running_proxy


@pytest.fixture(params=["direct", "proxy"])
def storage(request: pytest.FixtureRequest, storage_url: str) -> Iterator:
    if request.param == "direct":
        yield open_storage(storage_url, heartbeat_interval=None)
        return
    with running_proxy(storage_url) as url:
        client = open_proxy(*proxy_address(url), heartbeat_interval=None)
        yield client
        client.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"  # one PostgreSQL server serves the whole session


def _batch_on_a_new_trial(storage, prefix: str) -> tuple[optuna.Study, optuna.Trial, WriteBatch]:
    study = optuna.create_study(storage=storage, study_name=_name(prefix))
    trial = study.ask()
    return study, trial, WriteBatch(trial.storage)


_WRITES = (
    "set_trial_user_attr",
    "set_trial_system_attr",
    "set_trial_intermediate_value",
    "set_study_system_attr",
)


def _count_calls(backend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the one-at-a-time writes of the storage class under the batching (Optuna's
    RDBStorage or GrpcStorageProxy) and of every batch sent, as they are called."""
    calls: list[str] = []
    mro = type(backend).__mro__
    base = mro[mro.index(BatchedWrites) + 1]
    for name in _WRITES:
        monkeypatch.setattr(base, name, _recorded(calls, name, getattr(base, name)))
    monkeypatch.setattr(
        type(backend), "apply_writes", _recorded(calls, "batch", type(backend).apply_writes)
    )
    return calls


def _recorded(calls: list[str], name: str, fn):
    def recorded(self, *args, **kwargs):
        calls.append(name)
        return fn(self, *args, **kwargs)

    return recorded


def test_a_batch_is_one_call_and_lands_whole(storage, monkeypatch) -> None:
    study = optuna.create_study(storage=storage, study_name=_name("batch"))
    trial = study.ask()
    backend = getattr(trial.storage, "_backend", trial.storage)
    calls = _count_calls(backend, monkeypatch)
    writes = WriteBatch(trial.storage)
    with writes.collecting():
        trial.set_user_attr("epoch_1", {"f1": 0.5, "loss": float("nan")})
        trial.report(0.5, 1)
        trial.storage.set_trial_system_attr(trial._trial_id, "artifact", "a.log")
        trial.storage.set_study_system_attr(study._study_id, "note", "two lines")
        assert study.trials[0].user_attrs == {}  # nothing sent yet
    writes.flush()
    assert calls == ["batch"]
    stored = study.trials[0]
    assert stored.intermediate_values == {1: 0.5}
    assert stored.user_attrs["epoch_1"]["f1"] == 0.5 and math.isnan(
        stored.user_attrs["epoch_1"]["loss"]
    )
    assert stored.system_attrs["artifact"] == "a.log"
    assert study._storage.get_study_system_attrs(study._study_id)["note"] == "two lines"


def test_the_last_write_of_a_key_wins_as_one_by_one(storage) -> None:
    """A batch that writes one key twice lands as the same writes made one at a time would."""
    study, trial, writes = _batch_on_a_new_trial(storage, "twice")
    with writes.collecting():
        for value in (1, 2):
            trial.storage.set_trial_user_attr(trial._trial_id, "k", value)
            trial.storage.set_trial_intermediate_value(trial._trial_id, 1, float(value))
            trial.storage.set_study_system_attr(study._study_id, "note", f"v{value}")
        trial.storage.set_trial_intermediate_value(trial._trial_id, 2, float("-inf"))
        trial.storage.set_trial_intermediate_value(trial._trial_id, 3, float("nan"))
    writes.flush()
    stored = study.trials[0]
    assert stored.user_attrs == {"k": 2}
    assert stored.intermediate_values[1] == 2.0 and stored.intermediate_values[2] == -math.inf
    assert math.isnan(stored.intermediate_values[3])
    assert study._storage.get_study_system_attrs(study._study_id)["note"] == "v2"


def test_a_batch_naming_a_missing_trial_is_refused_whole(storage) -> None:
    study, trial, writes = _batch_on_a_new_trial(storage, "missing")
    with writes.collecting():
        trial.set_user_attr("a", 1)
        trial.storage.set_trial_user_attr(trial._trial_id + 10_000, "b", 2)
    with pytest.raises(KeyError):
        writes.flush()
    assert study.trials[0].user_attrs == {}


def test_a_failed_flush_keeps_its_writes_for_the_next(storage, monkeypatch) -> None:
    study = optuna.create_study(storage=storage, study_name=_name("retry"))
    trial = study.ask()
    backend = getattr(trial.storage, "_backend", trial.storage)
    writes = WriteBatch(trial.storage)
    with writes.collecting():
        trial.report(
            0.7, 1
        )  # Optuna's Trial now takes step 1 as reported, and never sends it again
    real = backend.apply_writes
    monkeypatch.setattr(backend, "apply_writes", _fails_once(real))
    with pytest.raises(ConnectionError):
        writes.flush()
    with writes.collecting():
        with pytest.warns(UserWarning, match="already reported"):
            trial.report(0.7, 1)  # the retried caller: ignored by Optuna
        trial.set_user_attr("epoch_1", {"f1": 0.7})
    writes.flush()
    assert study.trials[0].intermediate_values == {1: 0.7}
    assert study.trials[0].user_attrs == {"epoch_1": {"f1": 0.7}}


def _fails_once(fn):
    failed = []

    def flaky(writes):
        if not failed:
            failed.append(True)
            raise ConnectionError("link down")
        return fn(writes)

    return flaky


def test_a_batch_to_a_finished_trial_is_refused_whole(storage) -> None:
    study, trial, writes = _batch_on_a_new_trial(storage, "finished")
    with writes.collecting():
        trial.set_user_attr("a", 1)
        trial.set_user_attr("b", 2)
    study.tell(trial, 1.0)  # another worker failed it meanwhile, as far as this one knows
    with pytest.raises(UpdateFinishedTrialError):
        writes.flush()
    assert study.trials[0].user_attrs == {}


def test_other_threads_write_at_once(storage) -> None:
    """The heartbeat thread's writes never wait in the trial's batch."""
    study, trial, writes = _batch_on_a_new_trial(storage, "threads")
    with writes.collecting():
        beat = threading.Thread(
            target=lambda: trial.storage.set_trial_system_attr(trial._trial_id, "beat", 1)
        )
        beat.start()
        beat.join()
        assert study.trials[0].system_attrs["beat"] == 1
        trial.set_user_attr("later", True)
    assert "later" not in study.trials[0].user_attrs
    writes.flush()
    assert study.trials[0].user_attrs == {"later": True}


def test_the_databases_tally_is_the_trials_tally(storage) -> None:
    study = optuna.create_study(storage=storage, study_name=_name("tally"))
    start = dt.datetime(2026, 1, 1, 12, 0, 0)
    for state, seconds in (
        (TrialState.COMPLETE, 61.5),
        (TrialState.COMPLETE, 20.25),
        (TrialState.PRUNED, 10.0),
        (TrialState.FAIL, 3.0),
    ):
        trial = create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None)
        trial.datetime_start, trial.datetime_complete = (
            start,
            start + dt.timedelta(seconds=seconds),
        )
        study.add_trial(trial)
    study.ask()
    study.enqueue_trial({})
    counted = study_tally(study._storage, study._study_id)
    assert (
        counted.states
        == tally_of(study.trials).states
        == {
            TrialState.COMPLETE: 2,
            TrialState.PRUNED: 1,
            TrialState.FAIL: 1,
            TrialState.RUNNING: 1,
            TrialState.WAITING: 1,
        }
    )
    assert counted.timed == 3 and counted.timed_s == pytest.approx(91.75, abs=1e-3)
    assert counted.mean_finished_s == pytest.approx(
        tally_of(study.trials).mean_finished_s, abs=1e-3
    )
