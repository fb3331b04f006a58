"""The storage proxy's own parts: its URLs, the study lease and its fencing, heartbeats through
trial attributes, and what passes through it (artifacts' metadata, notes). Real gRPC on
loopback, real SQLite behind it."""

from __future__ import annotations

import multiprocessing as mp
import socket
import threading
import time
from pathlib import Path

import grpc
import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta, upload_artifact
from optuna.storages import GrpcStorageProxy
from optuna.trial import TrialState

from storage import StorageError, artifact_store, open_storage, proxy_address, resolve_storage_url
from storage.attr_heartbeat import BEAT_ATTR, StaleWatch
from storage.lease import LeaseTable, shared_lease_table
from storage.proxy_client import ProxyStorage, open_proxy
from storage.shared_reads import SharedReads
from tests.proxy_support import running_proxy


@pytest.fixture
def proxy_url(tmp_path: Path):
    with running_proxy(f"sqlite:///{tmp_path}/optuna.db") as url:
        yield url


def client(url: str, **kwargs) -> ProxyStorage:
    host, port = proxy_address(url)
    return open_proxy(host, port, **kwargs)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_proxy_urls_name_host_and_port_and_nothing_else() -> None:
    assert proxy_address(resolve_storage_url("grpc://10.0.0.5:13001")) == ("10.0.0.5", 13001)
    assert proxy_address("grpc://proxy.lab") == ("proxy.lab", 13000)
    assert proxy_address("postgresql+psycopg://u:p@db/hpo") is None
    with pytest.raises(StorageError, match="grpc://host:port"):
        proxy_address("grpc://proxy.lab:13000/hpo")


def test_an_unreachable_proxy_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(
        StorageError,
        match=rf"no storage proxy answers at grpc://127.0.0.1:{port} within 1 s; start one",
    ):
        open_proxy("127.0.0.1", port, connect_timeout_s=1)


def test_lease_is_exclusive_until_released_or_run_out() -> None:
    clock = FakeClock()
    leases = LeaseTable(clock)
    first = leases.acquire(1, ttl_s=10, wait_s=0)
    assert first and leases.acquire(1, ttl_s=10, wait_s=0) is None
    assert leases.acquire(2, ttl_s=10, wait_s=0)  # one lease per study
    leases.release(1, first)
    second = leases.acquire(1, ttl_s=10, wait_s=0)
    clock.now += 11  # its holder went silent: the next worker may take it
    third = leases.acquire(1, ttl_s=10, wait_s=0)
    assert second and third and third != second
    leases.release(1, second)  # a late release of a lost lease frees nothing
    with leases.fenced(1, third) as held_third, leases.fenced(1, second) as held_second:
        assert held_third and not held_second


def test_a_lease_that_ran_out_still_writes_while_nobody_else_took_it() -> None:
    clock = FakeClock()
    leases = LeaseTable(clock)
    token = leases.acquire(7, ttl_s=1, wait_s=0)
    clock.now += 5
    with leases.fenced(7, token) as held:
        assert held


def test_waiting_for_a_lease_takes_at_most_max_waiters_threads() -> None:
    leases = LeaseTable(max_waiters=1)
    leases.acquire(1, ttl_s=10, wait_s=0)
    waiter = threading.Thread(target=leases.acquire, args=(1, 10, 1.0))
    waiter.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert (
        leases.acquire(1, ttl_s=10, wait_s=1.0) is None and time.monotonic() - started < 0.5
    )  # answered at once
    waiter.join()


def _acquire_in_child(leases: LeaseTable, wait_s: float, out) -> None:
    out.send(leases.acquire(1, ttl_s=30, wait_s=wait_s))


def _in_another_process(leases: LeaseTable, ctx, wait_s: float, meanwhile=lambda: None):
    reader, writer = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_acquire_in_child, args=(leases, wait_s, writer))
    child.start()
    meanwhile()
    assert reader.poll(20), "the other process never answered"
    token = reader.recv()
    child.join(10)
    return token


def test_a_lease_shared_by_proxy_processes_holds_across_them() -> None:
    """The processes of `hpo storage-proxy --processes N` see one lease per study: one taken
    here is refused there, and a release here wakes a waiter there."""
    ctx = mp.get_context("fork")
    leases, manager = shared_lease_table(ctx, max_waiters=4)
    try:
        mine = leases.acquire(1, ttl_s=30, wait_s=0)
        assert mine and _in_another_process(leases, ctx, wait_s=0) is None
        theirs = _in_another_process(
            leases,
            ctx,
            wait_s=15,
            meanwhile=lambda: (time.sleep(0.5), leases.release(1, mine)),
        )
        assert theirs and theirs != mine
        with leases.fenced(1, mine) as held_mine, leases.fenced(1, theirs) as held_theirs:
            assert held_theirs and not held_mine
    finally:
        manager.shutdown()


def test_a_turn_counts_states_and_reads_the_queue_alone(proxy_url: str) -> None:
    storage = client(proxy_url, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="counts")
    study.enqueue_trial({"x": 0.5})
    study.enqueue_trial({"x": 0.7})
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # takes the first queued trial
    assert storage.count_states(study._study_id) == {TrialState.RUNNING: 1, TrialState.WAITING: 1}
    assert [t.system_attrs["fixed_params"] for t in storage.waiting_trials(study._study_id)] == [
        {"x": 0.7}
    ]


def test_a_claim_takes_the_queue_first_then_creates_and_stops_at_n_trials(proxy_url: str) -> None:
    storage = client(proxy_url, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="claims")
    study.enqueue_trial({"x": 0.5})
    x = {"x": optuna.distributions.FloatDistribution(0, 1)}
    asked = []
    for _ in range(2):
        assert storage.claim_trial(study._study_id, n_trials=2)
        asked.append(study.ask(x))  # Optuna's ask gets the claimed trial, and pops no other
    assert [t.number for t in asked] == [0, 1] and asked[0].params == {"x": 0.5}
    assert storage.count_states(study._study_id) == {TrialState.RUNNING: 2}
    assert not storage.claim_trial(study._study_id, n_trials=2)  # running trials fill it
    study.tell(asked[0], 1.0)
    study.tell(asked[1], state=TrialState.FAIL)  # a failed trial frees its place
    study.enqueue_trial({"x": 0.7})
    assert storage.claim_trial(study._study_id, n_trials=2)
    assert study.ask(x).params == {"x": 0.7}
    assert storage.count_states(study._study_id) == {
        TrialState.COMPLETE: 1, TrialState.FAIL: 1, TrialState.RUNNING: 1
    }  # fmt: skip


def test_a_created_trial_comes_with_its_claim_and_ask_reads_nothing(
    proxy_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = client(proxy_url, heartbeat_interval=None)
    study = optuna.create_study(storage=storage, study_name="handed")
    reads: list[int] = []
    real = GrpcStorageProxy.get_trial
    monkeypatch.setattr(
        GrpcStorageProxy, "get_trial", lambda self, i: reads.append(i) or real(self, i)
    )
    assert storage.claim_trial(study._study_id, n_trials=3)
    trial = study.ask()
    assert reads == []  # the claim's reply held the trial
    stored = storage.get_trial(trial._trial_id)  # read from the proxy: the next read is real
    assert reads == [trial._trial_id]
    handed = trial._cached_frozen_trial
    assert (handed.number, handed.state, handed.datetime_start) == (
        stored.number, TrialState.RUNNING, stored.datetime_start
    )  # fmt: skip
    study.enqueue_trial({"x": 0.5})  # a queued trial is taken, then read as it is now
    assert storage.claim_trial(study._study_id, n_trials=3)
    assert study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}).params == {"x": 0.5}
    assert len(reads) == 2


def test_concurrent_claims_take_exactly_the_room_left(proxy_url: str) -> None:
    storage = client(proxy_url, heartbeat_interval=None)
    study_id = optuna.create_study(storage=storage, study_name="crowd")._study_id
    workers = [client(proxy_url, heartbeat_interval=None) for _ in range(12)]
    claimed: list[bool] = []
    threads = [
        threading.Thread(target=lambda w=w: claimed.append(w.claim_trial(study_id, n_trials=5)))
        for w in workers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(claimed) == [False] * 7 + [True] * 5
    assert storage.count_states(study_id) == {TrialState.RUNNING: 5}


def test_a_claim_waits_for_a_worker_holding_the_lease(proxy_url: str) -> None:
    """A worker failing stale trials and queueing their retries holds the lease: no claim
    counts in between."""
    holder, claimer = client(proxy_url), client(proxy_url, heartbeat_interval=None)
    study = optuna.create_study(storage=holder, study_name="held")
    lease = holder.study_lease(study._study_id)
    lease.acquire()
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (claimer.claim_trial(study._study_id, n_trials=1), done.set())
    )
    thread.start()
    time.sleep(1.5)  # longer than one wait in the proxy: the claim was refused and asks again
    assert not done.is_set()
    holder.create_new_trial(study._study_id, template_trial=None)  # the holder's own trial
    lease.release()
    thread.join(30)
    assert done.is_set() and claimer.count_states(study._study_id) == {TrialState.RUNNING: 1}


def test_a_worker_that_lost_its_lease_cannot_create_a_trial(proxy_url: str) -> None:
    late, other = client(proxy_url), client(proxy_url)
    study = optuna.create_study(storage=late, study_name="fenced")
    late.study_lease(study._study_id, ttl_s=0.2).acquire()
    time.sleep(0.3)  # it ran out while the worker was cut off ...
    lease = other.study_lease(study._study_id)
    lease.acquire()  # ... and another worker took it
    with pytest.raises(grpc.RpcError) as refused:
        late.create_new_trial(study._study_id)
    assert refused.value.code() == grpc.StatusCode.ABORTED
    other.create_new_trial(study._study_id)
    lease.release()
    late._lease = None  # a worker outside its turn is not fenced (its tell, its heartbeats)
    late.create_new_trial(study._study_id)
    assert len(other.get_all_trials(study._study_id)) == 2


@pytest.mark.filterwarnings(
    "ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage"
)
def test_a_trial_whose_beats_stop_is_failed_and_retried_by_another_worker(tmp_path: Path) -> None:
    clock = FakeClock()  # the proxy's own clock, nobody else's
    with running_proxy(f"sqlite:///{tmp_path}/optuna.db", clock=clock) as proxy_url:
        runner, watcher = (
            client(proxy_url, heartbeat_interval=1),
            client(proxy_url, heartbeat_interval=1, grace_period=2),
        )
        study = optuna.create_study(storage=runner, study_name="beats")
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        watching = optuna.load_study(study_name="beats", storage=watcher)
        optuna.storages.fail_stale_trials(watching)  # first sight, before any beat
        clock.now += 1.5
        runner.record_heartbeat(trial._trial_id)  # beat 1: alive
        optuna.storages.fail_stale_trials(watching)
        clock.now += 1.5
        runner.record_heartbeat(trial._trial_id)  # beat 2
        optuna.storages.fail_stale_trials(watching)
        clock.now += 1.5
        optuna.storages.fail_stale_trials(watching)  # 1.5 s since beat 2 was first seen: alive
        assert watcher.get_trial(trial._trial_id).state == TrialState.RUNNING
        clock.now += 1
        optuna.storages.fail_stale_trials(watching)  # 2.5 s without a new beat: stale
        failed, retry = watcher.get_all_trials(study._study_id)
        assert failed.state == TrialState.FAIL and failed.system_attrs[BEAT_ATTR] == 2
        assert retry.state == TrialState.WAITING and retry.params == failed.params
        assert retry.system_attrs["failed_trial"] == 0 and retry.system_attrs["retry_history"] == [
            0
        ]
        runner.record_heartbeat(trial._trial_id)  # the cut worker's late beat changes nothing
        assert watcher._get_stale_trial_ids(study._study_id) == []  # only running trials count


def test_stale_watch_times_each_trial_from_its_reads() -> None:
    watch = StaleWatch()
    assert watch.stale_ids({3: "5"}, read_at=100, grace_s=2) == []
    assert watch.stale_ids({3: "5"}, read_at=101, grace_s=2) == []
    assert watch.stale_ids({3: "5"}, read_at=102, grace_s=2) == [3]
    assert watch.stale_ids({}, read_at=103, grace_s=2) == []  # finished: forgotten
    assert watch.stale_ids({3: "5"}, read_at=110, grace_s=2) == []  # seen again: timed afresh
    assert watch.stale_ids({3: "6"}, read_at=113, grace_s=2) == []  # a new beat: timed afresh


def test_artifacts_and_notes_pass_through_the_proxy(proxy_url: str, tmp_path: Path) -> None:
    """Optuna keeps an artifact's metadata, and optuna-dashboard a note, in system attributes."""
    from optuna_dashboard import save_note
    from optuna_dashboard._note import get_note_from_system_attrs

    study = optuna.create_study(
        storage=client(proxy_url, heartbeat_interval=None), study_name="files"
    )
    trial = study.ask()
    source = tmp_path / "metrics.json"
    source.write_text('{"f1": 0.9}')
    upload_artifact(
        artifact_store=artifact_store(tmp_path / "artifacts"),
        file_path=str(source),
        study_or_trial=trial,
    )
    save_note(trial, "**a note**")
    study.tell(trial, 0.5)
    direct = optuna.load_study(
        study_name="files",
        storage=open_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_interval=None),
    )
    (meta,) = get_all_artifact_meta(direct.trials[0], storage=direct._storage)
    assert (
        meta.filename == "metrics.json"
        and (tmp_path / "artifacts" / meta.artifact_id).read_text() == '{"f1": 0.9}'
    )
    attrs = direct._storage.get_study_system_attrs(direct._study_id)
    assert get_note_from_system_attrs(attrs, direct.trials[0]._trial_id)["body"] == "**a note**"


def test_concurrent_reads_share_queries_and_each_sees_every_earlier_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/optuna.db"
    rdb, writer = (
        open_storage(url, heartbeat_interval=None),
        open_storage(url, heartbeat_interval=None),
    )
    shared = SharedReads(rdb)
    study_id = writer.create_new_study([optuna.study.StudyDirection.MINIMIZE], "shared")
    queries, created, stale_reads = [], [0], []
    real = rdb._get_trials

    def slow_query(*args, **kwargs):
        queries.append(1)
        time.sleep(0.02)
        return real(*args, **kwargs)

    def reader() -> None:
        for _ in range(15):
            before = created[0]
            seen = len(shared.get_all_trials(study_id, deepcopy=False))
            if seen < before:
                stale_reads.append((seen, before))

    rdb._get_trials = slow_query
    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for _ in range(20):
        writer.create_new_trial(
            study_id
        )  # behind the cache's back, as another proxy client's write lands
        created[0] += 1
        time.sleep(0.005)
    for t in threads:
        t.join()
    assert not stale_reads
    assert len(queries) < 8 * 15 / 2  # most reads were answered by a query another read started


def test_a_taken_port_is_one_line_from_hpo_storage_proxy(tmp_path: Path) -> None:
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "hpo", "storage-proxy", "--storage", f"sqlite:///{tmp_path}/o.db",
                               "--port", str(port)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: storage proxy cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
