"""Faults during a study: workers killed, stopped or interrupted mid-trial, the database
restarted, a trial's process killed. Real PostgreSQL/SQLite, real `hpo` worker processes, the
sleep trainer and trainers that fail on purpose (testing.fault_trainers)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpo import stored
from hpo.spec import load_spec
from hpo.study import n_finished, open_study, run_study
from hpo.study.workers import wait_workers
from testing.specs import sleep_spec
from testing.workers import (
    FINISHED,
    HEARTBEAT_S,
    hpo_in_background,
    kill_mid_trial,
    process_gone,
    retries_of,
    start_study_workers,
    states,
    stop_all,
    wait_mid_trial,
    wait_until,
    worker_pid,
)


def test_worker_killed_mid_trial_its_trial_fails_and_is_retried(
    storage_url: str, tmp_path: Path, monkeypatch
) -> None:
    """SIGKILL of one of two `hpo study --join` workers: the other fails the silent trial once
    its heartbeat is stale, retries it and ends the study with exactly n_trials finished."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.3")
    study, procs = start_study_workers(sleep_spec(tmp_path, n_trials=4), storage_url, n_workers=2)
    try:
        trial = kill_mid_trial(study, procs)
    finally:
        stop_all(procs)

    assert wait_until(
        lambda: process_gone(trial.user_attrs["epoch_001"]["pid"]),
        timeout_s=10,
        what="the orphaned trial process to exit",
    )
    after = study.get_trials(deepcopy=False)
    killed = next(t for t in after if t.number == trial.number)
    assert killed.state.name == "FAIL"  # by the other worker, once its heartbeat went stale
    retries = retries_of(after, trial.number)
    assert [r.params for r in retries] == [trial.params] and retries[0].state in FINISHED
    assert n_finished(study) == 4 and set(states(study)) <= {"COMPLETE", "PRUNED", "FAIL"}


def test_a_trial_that_keeps_killing_its_worker_is_retried_3_times_then_no_more(
    tmp_path: Path, monkeypatch
) -> None:
    """Each run of this trial kills the worker running it (as a machine lost mid-trial); a
    waiting worker fails it once its heartbeat is stale and runs the retry Optuna queued. After
    the third retry the grid's other point runs: were a fourth retry queued, it would come first."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.05")
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec_path = sleep_spec(
        tmp_path,
        n_trials=1,
        training={"epochs": 1},
        trainer="testing.fault_trainers:worker_killed_when_lr_above_1",
        sampler={"type": "grid"},
        search_space={"learning_rate": {"type": "categorical", "choices": [5.0, 1e-3]}},
    )
    open_study(load_spec(str(spec_path)), url).enqueue_trial({"learning_rate": 5.0})
    study, procs = start_study_workers(spec_path, url, n_workers=4)
    try:
        assert [p.wait(timeout=120) for p in procs] == [
            -signal.SIGKILL
        ] * 4  # the first run and 3 retries
    finally:
        stop_all(procs)
    assert states(study) == {"FAIL": 3, "RUNNING": 1}
    run_study(load_spec(str(spec_path)), study, tmp_path, poll_s=0.2)  # one more worker, here

    *deadly, last = study.trials
    assert [t.params["learning_rate"] for t in deadly] == [5.0] * 4 and last.params[
        "learning_rate"
    ] == 1e-3
    assert [len(retries_of(study.trials, t.number)) for t in deadly] == [
        3,
        2,
        1,
        0,
    ]  # each retry of all before it
    assert states(study) == {"FAIL": 4, "COMPLETE": 1}  # no retry left waiting, none running


def _hpo_workers(spec_path: Path, url: str, tmp_path: Path, epoch_s: float):
    """`hpo workers SPEC -n 2`, the storage URL in its environment as a user would give it."""
    args = (
        str(spec_path),
        "-n",
        "2",
        "--data-dir",
        str(spec_path.parent),
        "--heartbeat",
        str(HEARTBEAT_S),
    )
    return hpo_in_background(
        "workers",
        *args,
        log=tmp_path / "hpo-workers.log",
        HPO_STORAGE=url,
        SLEEP_EPOCH_S=str(epoch_s),
    )


def _running_in_a_live_worker(study):
    """A trial in its second epoch (of three) in a worker that is still alive (its pid from the
    trial's attributes): more than an epoch is left when the interrupt arrives."""
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        second = stored.epoch_key(1) in attrs and stored.epoch_key(2) not in attrs
        if second and not process_gone(worker_pid(trial)):
            return trial
    return None


def test_ctrl_c_on_hpo_workers_stops_every_worker_and_keeps_the_finished_trials(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    spec_path = sleep_spec(tmp_path, n_trials=20)
    study = open_study(load_spec(str(spec_path)), url, heartbeat_interval=HEARTBEAT_S)
    # 1.5 s epochs: the trial seen in its second epoch is still running when the interrupt arrives.
    with _hpo_workers(spec_path, url, tmp_path, epoch_s=1.5) as hpo:
        wait_until(
            lambda: (
                n_finished(study) >= 1
                and len(_workers(study)) == 2
                and _running_in_a_live_worker(study)
            ),
            what="a finished trial, both workers started and a trial mid-epoch",
        )
        finished = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
        hpo.send_signal(
            signal.SIGINT
        )  # what a terminal's Ctrl-C sends: the workers run in sessions of their own
        assert hpo.wait(timeout=90) == 130

    trials = study.get_trials(deepcopy=False)
    assert states(study)["RUNNING"] == 0 and all(process_gone(pid) for pid in _workers(study))
    assert {t.number for t in trials if t.state in FINISHED} >= finished and n_finished(study) < 20
    # A trial stopped mid-epoch says why, and its training process went with it.
    stopped = [
        t for t in trials if t.state == TrialState.FAIL and stored.epoch_key(1) in t.user_attrs
    ]
    assert stopped and all(
        t.user_attrs[stored.FAIL_REASON].startswith("interrupted") for t in stopped
    )
    assert all(process_gone(t.user_attrs["epoch_001"]["pid"]) for t in stopped)


def _workers(study) -> set[int]:
    return {
        worker_pid(t) for t in study.get_trials(deepcopy=False) if stored.WORKER in t.user_attrs
    }


def test_sigterm_fails_the_running_trial_and_stops_its_process(
    tmp_path: Path, monkeypatch
) -> None:
    # 1 s epochs: a trial seen in its second epoch has over a second left, however late a busy
    # machine lets this process send the signal (with 0.4 s the victim sometimes finished first).
    monkeypatch.setenv("SLEEP_EPOCH_S", "1.0")
    study, procs = start_study_workers(
        sleep_spec(tmp_path, n_trials=4), f"sqlite:///{tmp_path}/optuna.db", n_workers=2
    )
    try:
        trial, victim = wait_mid_trial(study, procs)
        victim.send_signal(signal.SIGTERM)
        assert victim.wait(timeout=30) == 130  # hpo.cli: interrupted
        assert process_gone(
            trial.user_attrs["epoch_001"]["pid"]
        )  # stopped by its runner, not orphaned
        stopped = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        assert stopped.state.name == "FAIL" and stopped.user_attrs["fail_reason"].startswith(
            "interrupted"
        )
        assert [p.wait() for p in procs if p is not victim] == [0]  # the other finishes the study
    finally:
        stop_all(procs)
    assert n_finished(study) == 4 and states(study)["RUNNING"] == 0


def test_a_trial_failed_by_another_worker_while_running_is_retried_and_the_worker_goes_on(
    tmp_path: Path, monkeypatch
) -> None:
    """What another worker does when this one's heartbeat is late (a stall, a slow database)."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.3")
    study, procs = start_study_workers(
        sleep_spec(tmp_path, n_trials=3), f"sqlite:///{tmp_path}/optuna.db", n_workers=1
    )
    try:
        trial, worker = wait_mid_trial(study, procs)
        storage = study._storage
        storage.set_trial_state_values(
            trial._trial_id, TrialState.FAIL
        )  # as fail_stale_trials does
        storage.get_heartbeat_stale_trial_callback()(study, storage.get_trial(trial._trial_id))
        assert worker.wait(timeout=60) == 0
    finally:
        stop_all(procs)
    retries = retries_of(study.trials, trial.number)
    assert [r.params for r in retries] == [trial.params] and retries[0].state in FINISHED
    assert n_finished(study) == 3 and states(study)["RUNNING"] == 0


@pytest.mark.postgres
def test_postgres_restart_mid_study_loses_no_finished_trial(
    postgres, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.3")
    study, procs = start_study_workers(
        sleep_spec(tmp_path, n_trials=10), postgres.url, n_workers=2
    )
    try:
        wait_until(lambda: n_finished(study) >= 3, what="3 finished trials")
        before = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
        postgres.restart()  # every client connection dropped
        assert wait_workers(procs) == 0
    finally:
        stop_all(procs)
    after = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    assert all(after[n] in FINISHED for n in before)
    assert n_finished(study) == 10 and states(study)["RUNNING"] == 0


def test_trial_process_killed_like_oom_fails_with_its_reason_and_the_study_goes_on(
    tmp_path: Path,
) -> None:
    spec = load_spec(
        str(
            sleep_spec(
                tmp_path,
                n_trials=1,
                trainer="testing.fault_trainers:oom_when_lr_above_1",
                search_space={
                    "learning_rate": {"type": "float", "low": 1e-5, "high": 10.0, "log": True}
                },
            )
        )
    )
    study = open_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    study.enqueue_trial({"learning_rate": 5.0})  # its process dies by SIGKILL after one epoch
    study.enqueue_trial({"learning_rate": 1e-3})
    run_study(spec, study, tmp_path)
    first, second = study.trials
    assert (
        first.state.name == "FAIL"
        and "killed by signal 9 (out of memory?)" in first.user_attrs["fail_reason"]
    )
    assert "epoch_001" in first.user_attrs  # what it reported before dying is kept
    assert second.state.name == "COMPLETE" and n_finished(study) == 1


def test_a_database_outage_is_recognised_however_optuna_wraps_it() -> None:
    """Optuna 5's tell, failing on a dead connection, can raise UnboundLocalError instead."""
    from sqlalchemy.exc import OperationalError

    from hpo.study.loop import _db_outage

    try:
        try:
            raise OperationalError(
                "UPDATE trials", {}, ConnectionError("server closed the connection")
            )
        except OperationalError:
            raise UnboundLocalError("cannot access local variable 'updated_state'")  # noqa: B904 - as Optuna does
    except UnboundLocalError as e:
        assert _db_outage(e)
    assert not _db_outage(ValueError("not a database problem"))


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_trial_failed_by_another_worker_before_its_first_write_is_taken_over(
    tmp_path: Path,
) -> None:
    """Its worker was cut off between creating it and writing where it runs, for longer than
    the grace period: the first write is refused, and the worker hands the trial over (a
    warning, the next turn) instead of dying."""
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError

    from hpo.study.loop import _Admitted
    from hpo.study.turns import TrialSlots

    spec = load_spec(str(sleep_spec(tmp_path, n_trials=2)))
    study = open_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    trial = study.ask()
    study.tell(trial.number, state=TrialState.FAIL)  # by the worker that found it silent
    admitted = _Admitted(objective=None, slots=TrialSlots(study, spec))  # never reached
    with pytest.raises(UpdateFinishedTrialError):
        admitted(optuna.Trial(study, trial._trial_id))
    assert admitted.taken_over == trial.number
