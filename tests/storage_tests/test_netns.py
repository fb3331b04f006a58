"""Machines on a network, played by network namespaces: PostgreSQL and `hpo storage-proxy` in
one, two workers in each of two others, every byte over the veth links between them. One worker
namespace's link is cut mid-study and brought back.

The test process itself reads the database over PostgreSQL's unix socket only: it never opens
a connection to the namespaces' addresses, and they have no route out.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hpo.spec import load_spec
from hpo.study import open_study
from testing.data import REPO
from testing.pg_server import PostgresServer, PostgresUnavailable, start_server, teardown
from testing.specs import sleep_spec
from testing.workers import FINISHED, worker_pid
from tests.storage_tests.netns_lab import Lab, NetnsUnavailable, build_lab

pytestmark = [pytest.mark.netns, pytest.mark.postgres]
PROXY_PORT = 13000  # free: nothing else lives in the server's namespace
N_TRIALS = 12


@pytest.fixture
def lab() -> Iterator[Lab]:
    try:
        built = build_lab(n_workers=2)
    except NetnsUnavailable as e:
        pytest.skip(f"no network namespaces here: {e}")
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def database(lab: Lab) -> Iterator[PostgresServer]:
    try:
        server = start_server(max_connections=20, netns=lab.server)
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    try:
        yield server
    finally:
        teardown(server)


def test_a_cut_link_mid_study_still_ends_with_exactly_n_trials(
    lab: Lab, database: PostgresServer, tmp_path: Path
) -> None:
    spec_path = sleep_spec(tmp_path, n_trials=N_TRIALS)
    study = open_study(load_spec(str(spec_path)), database.socket_url, heartbeat_interval=1)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SLEEP_EPOCH_S": "0.5",
        "HPO_ARTIFACT_DIR": str(tmp_path / "artifacts"),
    }
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start_proxy(lab, database, env))
        workers = {
            link.namespace: [
                _start_worker(lab, link.namespace, link.server_ip, spec_path, env)
                for _ in range(2)
            ]
            for link in lab.links
        }
        procs += [p for ws in workers.values() for p in ws]
        cut, kept = lab.links
        cut_pids = {p.pid for p in workers[cut.namespace]}

        _wait(
            lambda: _mid_trial(study, cut_pids), "a trial of the cut namespace in its second epoch"
        )
        lab.cut(cut)
        stranded = [
            t.number
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if worker_pid(t) in cut_pids
        ]
        _wait(
            lambda: all(_state(study, n) == TrialState.FAIL for n in stranded),
            "the other workers to fail the stranded trials",
        )
        lab.restore(cut)
        codes = [p.wait(timeout=90) for p in procs[1:]]
    finally:
        for p in procs:
            p.kill()
            p.wait()

    trials = study.get_trials(deepcopy=False)
    assert codes == [0, 0, 0, 0]  # the cut workers came back, and found the study done
    assert sum(t.state in FINISHED for t in trials) == N_TRIALS
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert stranded
    for number in stranded:
        original = trials[number]
        retries = [t for t in trials if number in t.system_attrs.get("retry_history", [])]
        assert [r.params for r in retries if r.state in FINISHED] == [original.params]
    finished_by = {worker_pid(t) for t in trials if t.state in FINISHED}
    assert finished_by & {p.pid for p in workers[kept.namespace]}


def _start_proxy(lab: Lab, database: PostgresServer, env: dict[str, str]) -> subprocess.Popen:
    """The proxy beside PostgreSQL, on every address of the server's namespace; the URL (and its
    password) travels in the environment."""
    cmd = [
        "ip",
        "netns",
        "exec",
        lab.server,
        sys.executable,
        "-m",
        "hpo",
        "storage-proxy",
        "--host",
        "0.0.0.0",
        "--port",
        str(PROXY_PORT),
    ]
    proc = subprocess.Popen(
        cmd, env={**env, "HPO_STORAGE": database.url}, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    ready, _, _ = select.select([proc.stdout], [], [], 60)
    assert ready and "storage proxy for" in proc.stdout.readline(), "the proxy did not start"
    return proc


def _start_worker(
    lab: Lab, namespace: str, proxy_ip: str, spec_path: Path, env: dict[str, str]
) -> subprocess.Popen:
    cmd = [
        "ip",
        "netns",
        "exec",
        namespace,
        sys.executable,
        "-m",
        "hpo",
        "study",
        str(spec_path),
        "--join",
        "--data-dir",
        str(spec_path.parent),
        "--heartbeat",
        "1",
    ]
    return subprocess.Popen(
        cmd,
        env={**env, "HPO_STORAGE": f"grpc://{proxy_ip}:{PROXY_PORT}"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _mid_trial(study: optuna.Study, pids: set[int]) -> bool:
    return any(
        worker_pid(t) in pids and "epoch_001" in t.user_attrs
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    )


def _state(study: optuna.Study, number: int) -> TrialState:
    return study.get_trials(deepcopy=False)[number].state


def _wait(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(0.2)
