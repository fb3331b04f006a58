"""Worker processes that reach the study only through `hpo storage-proxy`: exact n_trials, a
killed worker's trial retried, the dashboard and the trials' artifacts on a grpc:// URL."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hpo.dashboard import dashboard_url, make_dashboard_server
from hpo.study import n_finished
from hpo.study.workers import wait_workers
from storage import default_artifact_dir
from testing.pg_server import free_port
from testing.specs import sleep_spec
from testing.workers import (
    FINISHED,
    hpo_in_background,
    kill_mid_trial,
    process_gone,
    states,
    stop_all,
    wait_until,
)
from testing.workers import start_study_workers as create_and_start
from tests.proxy_support import running_proxy


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def proxy_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    database = (
        f"sqlite:///{tmp_path}/optuna.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres").url
    )
    with running_proxy(database) as url:
        yield url


def test_workers_through_the_proxy_finish_exactly_n_trials(
    proxy_url: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.1")
    study, procs = create_and_start(sleep_spec(tmp_path, n_trials=10), proxy_url, n_workers=3)
    try:
        assert wait_workers(procs) == 0
    finally:
        stop_all(procs)
    trials = study.get_trials(deepcopy=False)
    assert states(study) == {"COMPLETE": 10}  # not one more, none failed
    assert len({t.user_attrs["worker"] for t in trials}) >= 2
    assert all("hpo:beat" in t.system_attrs for t in trials)  # heartbeats went through the proxy


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@contextmanager
def _proxy_of_two(
    storage_url: str, log: Path
) -> Iterator[tuple[subprocess.Popen, int, list[int]]]:
    """`hpo storage-proxy --processes 2` on a free port, once it answers: (the process, its
    port, its children: two servers and the lease table's manager)."""
    port = free_port()
    command = ("storage-proxy", "--processes", "2", "--port", str(port))
    with hpo_in_background(*command, log=log, HPO_STORAGE=storage_url) as proxy:
        wait_until(lambda: _answers(port) or proxy.poll() is not None, 120, "the proxy's port")
        assert proxy.poll() is None, log.read_text()
        children = Path(f"/proc/{proxy.pid}/task/{proxy.pid}/children").read_text().split()
        assert len(children) == 3
        yield proxy, port, [int(pid) for pid in children]


@pytest.mark.postgres
def test_a_proxy_of_two_processes_keeps_exactly_n_trials(
    postgres, tmp_path: Path, monkeypatch
) -> None:
    """`hpo storage-proxy --processes 2`: two servers on one port, the kernel spreading the
    workers over them, one study lease between them."""
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.1")
    log = tmp_path / "proxy.log"
    with _proxy_of_two(postgres.url, log) as (proxy, port, _):
        url = f"grpc://127.0.0.1:{port}"
        study, procs = create_and_start(sleep_spec(tmp_path, n_trials=12), url, n_workers=4)
        try:
            assert wait_workers(procs) == 0
        finally:
            stop_all(procs)
        assert states(study) == {"COMPLETE": 12}  # not one more, none failed
    assert proxy.returncode == 0, log.read_text()
    assert f"on grpc://127.0.0.1:{port} (2 processes × 64 threads" in log.read_text()


def test_a_killed_proxy_takes_its_server_processes_with_it(tmp_path: Path) -> None:
    """SIGKILL leaves the parent no chance to stop its servers: they must not keep the port."""
    url = f"sqlite:///{tmp_path}/optuna.db"
    with _proxy_of_two(url, tmp_path / "proxy.log") as (proxy, port, children):
        proxy.kill()
        proxy.wait()
        wait_until(lambda: all(map(process_gone, children)), 30, "its servers to stop")
    assert not _answers(port)


def test_the_dashboard_serves_a_proxy_study_with_its_artifacts(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.05")
    with running_proxy(f"sqlite:///{tmp_path}/optuna.db") as url:
        study, procs = create_and_start(sleep_spec(tmp_path, n_trials=2), url, n_workers=1)
        assert wait_workers(procs) == 0
        server = make_dashboard_server(url, "127.0.0.1", 0, default_artifact_dir(url))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            base = dashboard_url(server).removesuffix("/dashboard")
            detail = json.loads(_get(f"{base}/api/studies/{study._study_id}"))
            (served, _) = detail["trials"]
            files = {a["filename"]: a["artifact_id"] for a in served["artifacts"]}
            assert {"metrics.json", "epochs.csv", "train.log"} <= set(files)
            history = json.loads(
                _get(
                    f"{base}/artifacts/{study._study_id}/{served['trial_id']}/{files['metrics.json']}"
                )
            )
            assert [m["epoch"] for m in history] == [1, 2, 3]
            assert "| epoch |" in served["note"]["body"]
        finally:
            server.shutdown()
            server.server_close()


def test_a_worker_killed_through_the_proxy_has_its_trial_failed_and_retried(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.4")
    with running_proxy(f"sqlite:///{tmp_path}/optuna.db") as url:
        study, procs = create_and_start(sleep_spec(tmp_path, n_trials=5), url, n_workers=2)
        try:
            trial = kill_mid_trial(study, procs)
        finally:
            stop_all(procs)
        after = study.get_trials(deepcopy=False)
        assert n_finished(study) == 5 and states(study)["RUNNING"] == 0
    killed = next(t for t in after if t.number == trial.number)
    assert killed.state.name == "FAIL"  # by the other worker, which saw its beats stop
    retries = [t for t in after if trial.number in t.system_attrs.get("retry_history", [])]
    assert [r.params for r in retries] == [trial.params] and retries[0].state in FINISHED


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")
def test_a_turn_through_the_proxy_is_one_claim_unless_it_needs_the_lock(tmp_path: Path) -> None:
    """The common turn is claimed from the proxy; a grid (its free point is read from the
    trials) and a stale trial to fail (two writes no one may count between) take the lock."""
    from hpo.spec import load_spec
    from hpo.study import open_study
    from hpo.study.turns import TrialSlots, Turn

    with running_proxy(f"sqlite:///{tmp_path}/optuna.db") as url:
        spec = load_spec(str(sleep_spec(tmp_path, n_trials=2)))
        study = open_study(spec, url, heartbeat_interval=1)
        slots = TrialSlots(study, spec)
        assert slots.claim() is Turn.RUN
        assert study.ask().number == 0 and slots.claim() is Turn.RUN
        study.ask()
        assert slots.claim() is Turn.WAIT  # two running trials fill n_trials 2
        assert study._storage._get_stale_trial_ids(study._study_id) == []  # beats first seen
        time.sleep(2.5)  # no beat comes (no heartbeat thread outside optimize) for the grace, 2 s
        assert slots.claim() is None  # so this turn fails them under the lock

        grid = load_spec(str(sleep_spec(tmp_path, n_trials=2, sampler={"type": "grid"},
                                        search_space={"learning_rate": {"type": "categorical", "choices": [0.1, 0.2]}})))  # fmt: skip
        assert TrialSlots(open_study(grid, url), grid).claim() is None
