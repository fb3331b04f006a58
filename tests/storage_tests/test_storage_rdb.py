"""open_storage/with_retries against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import logging
import os
import pickle
import select
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
from sqlalchemy.engine import make_url

from storage import StorageError, open_storage, with_retries

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("storage_worker.py")


@pytest.fixture
def study_name() -> str:
    return f"study-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is shared by all tests


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -1.0, 1.0)
    for step in range(3):
        trial.report(x * (step + 1), step)
    trial.set_user_attr("tokenizer", "minilm")
    return x**2


def worker(mode: str, study: str, url: str, *args: str) -> subprocess.Popen[str]:
    """Start storage_worker.py; the URL travels in the environment, never on a command line."""
    env = {**os.environ, "HPO_STORAGE": url, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, study, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


class TestContract:
    def test_trials_reports_and_attrs_survive_reopening(
        self, storage_url: str, study_name: str
    ) -> None:
        study = optuna.create_study(study_name=study_name, storage=open_storage(storage_url))
        study.optimize(objective, n_trials=3)

        reloaded = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
        assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3
        assert reloaded.best_value == study.best_value
        first = reloaded.trials[0]
        assert first.user_attrs == {"tokenizer": "minilm"}
        assert first.intermediate_values == {s: first.params["x"] * (s + 1) for s in range(3)}

    @pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
    def test_killed_worker_trial_fails_and_is_retried_with_same_params(
        self, storage_url: str, study_name: str
    ) -> None:
        storage = open_storage(storage_url, heartbeat_interval=1, grace_period=2)
        study = optuna.create_study(study_name=study_name, storage=storage)
        proc = worker("hang", study_name, storage_url)
        try:
            line = _read_line(proc, timeout=60)
        finally:
            proc.kill()  # SIGKILL: no cleanup, the trial stays RUNNING in the database
            _, err = proc.communicate()
        assert line.startswith("RUNNING 0"), err
        time.sleep(3.2)  # > grace_period, with SQLite's whole-second heartbeat timestamps

        study.optimize(lambda t: t.suggest_float("lr", 1e-5, 1e-2, log=True), n_trials=1)

        killed, retry = study.trials
        assert killed.state == TrialState.FAIL
        assert retry.state == TrialState.COMPLETE
        assert retry.params == killed.params
        assert retry.user_attrs == {"worker": "hang"}
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == 0

    @pytest.mark.filterwarnings(
        "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage"
    )
    def test_a_running_trial_that_never_beat_goes_stale_after_the_grace_period(
        self, storage_url: str, study_name: str
    ) -> None:
        """A worker cut off between creating its trial and its first heartbeat leaves a RUNNING
        trial with no heartbeat at all, which Optuna alone never fails: the study would wait on
        it for good."""
        storage = open_storage(storage_url, heartbeat_interval=1, grace_period=2)
        study = optuna.create_study(study_name=study_name, storage=storage)
        orphan = study.ask()  # outside optimize: no heartbeat thread, no heartbeat row
        assert storage._get_stale_trial_ids(study._study_id) == []  # first seen without a beat
        time.sleep(1.0)
        assert storage._get_stale_trial_ids(study._study_id) == []  # within the grace period
        time.sleep(1.2)
        optuna.storages.fail_stale_trials(study)
        failed, retry = study.get_trials(deepcopy=False)
        assert failed.number == orphan.number and failed.state == TrialState.FAIL
        assert retry.state == TrialState.WAITING
        assert RetryHeartbeatStaleTrialCallback.retried_trial_number(retry) == orphan.number

    def test_storage_survives_pickling(self, storage_url: str, study_name: str) -> None:
        storage = pickle.loads(pickle.dumps(open_storage(storage_url)))
        optuna.create_study(study_name=study_name, storage=storage).optimize(objective, n_trials=1)
        assert len(optuna.load_study(study_name=study_name, storage=storage).trials) == 1


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "optuna.db"
    storage = open_storage(f"sqlite:///{db}")
    for engine in (storage.engine, pickle.loads(pickle.dumps(storage)).engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with sqlite3.connect(db) as conn:  # WAL is a property of the file, seen by any client
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_parallel_sqlite_workers_do_not_lock_out(tmp_path: Path, study_name: str) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"  # fresh file: the workers also race to create tables
    procs = [worker("trials", study_name, url, "10") for _ in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err, err
    trials = optuna.load_study(study_name=study_name, storage=open_storage(url)).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 40
    assert sorted(t.number for t in trials) == list(range(40))


def test_missing_sqlite_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unable to open database file"):
        open_storage(f"sqlite:///{tmp_path}/missing/optuna.db")


@pytest.mark.postgres
def test_bad_postgres_credentials_are_one_redacted_line(postgres) -> None:
    url = make_url(postgres.url).set(password="wrong-hunter2")
    with pytest.raises(StorageError) as info:
        open_storage(url.render_as_string(hide_password=False))
    message = str(info.value)
    assert "password authentication failed" in message
    assert "***" in message and "hunter2" not in message and "\n" not in message


@pytest.mark.postgres
def test_unreachable_postgres_is_a_storage_error(postgres) -> None:
    url = make_url(postgres.url).set(port=1)  # nothing listens on port 1
    with pytest.raises(StorageError, match="cannot open storage .*:\\*\\*\\*@"):
        open_storage(url.render_as_string(hide_password=False))


@pytest.mark.postgres
def test_postgres_restart_mid_study(
    postgres, study_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    storage = open_storage(postgres.url, heartbeat_interval=1)
    study = optuna.create_study(study_name=study_name, storage=storage)
    study.optimize(objective, n_trials=1)

    def outage(trial: optuna.Trial) -> float:
        postgres.stop()
        time.sleep(1.5)  # at least one heartbeat fails while the server is down
        postgres.start()
        time.sleep(1.2)  # and the next one succeeds
        return objective(trial)

    with caplog.at_level(logging.WARNING, logger="storage"):
        study.optimize(outage, n_trials=1)  # pool_pre_ping replaces the dead connections
    assert "heartbeat for trial id" in caplog.text  # skipped, and the thread kept going

    postgres.restart()
    study.optimize(objective, n_trials=1)

    postgres.stop()
    restarter = threading.Timer(1.0, postgres.start)
    restarter.start()
    try:
        reloaded = with_retries(
            lambda: optuna.load_study(study_name=study_name, storage=storage),
            attempts=6,
            delay=0.5,
            what="load_study",
        )
    finally:
        restarter.join()
    assert [t.state for t in reloaded.trials] == [TrialState.COMPLETE] * 3


def test_with_retries_does_not_retry_real_bugs() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("not a database problem")

    with pytest.raises(KeyError):
        with_retries(broken, delay=0.01)
    assert len(calls) == 1


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""
