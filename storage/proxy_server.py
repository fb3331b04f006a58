"""`hpo storage-proxy`: Optuna's gRPC storage proxy in front of one database, for many workers.

The workers hold no database connection: the proxy holds a bounded pool (`Pool`) and serves
every worker from it. It is Optuna's own servicer with these additions:
- the study lease (storage.lease), the study lock of workers that cannot take a database lock,
  and two small reads for the turn taken under it (storage.shared_reads);
- a batch of writes (storage.batched_writes) in one call and one transaction;
- the stale trials: the running trials' heartbeats (storage.attr_heartbeat), read with one small
  query and timed by this process's clock;
- fencing: a call that creates a trial or takes a queued one while carrying a lease token is
  refused (ABORTED) unless that token still holds the study's lease, so a worker that lost its
  lease while cut off cannot add a trial beyond n_trials when its link returns.

One Python process serves calls on one core at a time (the GIL), about 0.06 CPU seconds per trial
of the sleep trainer (benchmarks/worker_scaling.py). `processes` > 1 forks that many servers on
one port (SO_REUSEPORT: the kernel spreads the workers' connections over them), each with its own
database pool, all sharing one lease table.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import grpc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
from optuna.storages._grpc.servicer import OptunaStorageProxyService, _to_proto_trial
from optuna.trial import TrialState

from storage import proxy_wire as wire
from storage.attr_heartbeat import StaleWatch
from storage.batched_writes import Write, write_in_one_transaction
from storage.errors import StorageError
from storage.lease import LeaseTable, shared_lease_table
from storage.pg_budget import check_room
from storage.rdb import Pool, open_storage
from storage.shared_reads import SharedReads
from storage.urls import proxy_address, redact

_log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 20_000),  # drop the connections of workers that are gone
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),  # accept the workers' keepalives (proxy_client)
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


@dataclass(frozen=True)
class ProxySettings:
    storage_url: str
    host: str = "127.0.0.1"
    port: int = wire.DEFAULT_PORT
    threads: int = 128  # concurrent calls; lease waits (<= MAX_WAIT_S, half the threads at most) hold one each
    pool: Pool = Pool(
        size=10, overflow=0
    )  # each process's database connections: this is all the proxy ever opens
    processes: int = 1

    @property
    def max_connections(self) -> int:
        return self.processes * (self.pool.size + self.pool.overflow)

    @property
    def max_waiters(self) -> int:
        return max(1, self.threads // 2)  # the other half serves the holder and the trials


def make_proxy_server(
    settings: ProxySettings,
    leases: LeaseTable | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[grpc.Server, int]:
    """The server, bound but not started, and the port it bound (port 0 picks a free one).
    `leases`: a table shared with the proxy's other processes; by default one of its own.
    `clock` times the trials' heartbeats."""
    _refuse_a_proxy_behind(settings.storage_url)
    if leases is None:
        check_room(settings.storage_url, 1, settings.pool, what="the storage proxy")
        leases = LeaseTable(max_waiters=settings.max_waiters)
    rdb = open_storage(settings.storage_url, heartbeat_interval=None, pool=settings.pool)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="proxy"),
        options=[*_SERVER_OPTIONS, ("grpc.so_reuseport", int(settings.processes > 1))],
    )
    storage = SharedReads(
        rdb
    )  # Optuna's cached layer (finished trials are read once), without its queueing
    api_pb2_grpc.add_StorageServiceServicer_to_server(_FencedService(storage, leases), server)
    server.add_generic_rpc_handlers([_study_handler(leases, storage, clock)])
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    except RuntimeError as e:
        raise StorageError(
            f"storage proxy cannot listen on {settings.host}:{settings.port}: {e}"
        ) from e
    return server, port


def _refuse_a_proxy_behind(storage_url: str) -> None:
    if proxy_address(storage_url) is not None:
        raise StorageError(
            "hpo storage-proxy needs a database URL (postgresql://… or sqlite:///…), not another proxy"
        )


def serve_proxy(settings: ProxySettings) -> None:
    """Serve until Ctrl-C or SIGTERM; calls in flight get a few seconds to finish."""
    if settings.processes > 1:
        _serve_processes(settings)
        return
    if settings.port:  # before gRPC, whose own bind failure logs a line of its own first
        _refuse_a_taken_port(settings.host, settings.port)
    server, port = make_proxy_server(settings)
    server.start()
    _announce(settings, port)
    _serve_until_stopped(server)


def _announce(settings: ProxySettings, port: int) -> None:
    each = f"{settings.processes} processes × " if settings.processes > 1 else ""
    print(
        f"storage proxy for {redact(settings.storage_url)} on grpc://{settings.host}:{port} "
        f"({each}{settings.threads} threads, at most {settings.max_connections} database connections); "
        f"workers: --storage grpc://{settings.host}:{port}",
        flush=True,
    )


def _serve_until_stopped(server: grpc.Server) -> None:
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=5).wait()


def _serve_processes(settings: ProxySettings) -> None:
    """`settings.processes` servers forked from here before any gRPC object exists (gRPC does not
    survive a fork), on one fixed port, sharing one lease table."""
    if settings.port == 0:
        raise StorageError(
            "hpo storage-proxy --processes needs a fixed --port: its servers share it"
        )
    _refuse_a_proxy_behind(settings.storage_url)
    _refuse_a_taken_port(settings.host, settings.port)
    check_room(settings.storage_url, settings.processes, settings.pool, what="the storage proxy")
    # Create or upgrade the schema once, here: servers starting together on a new database
    # would race to create its tables. No connection is left open across the fork.
    open_storage(
        settings.storage_url, heartbeat_interval=None, pool=settings.pool
    ).engine.dispose()
    ctx = mp.get_context("fork")
    leases, manager = shared_lease_table(ctx, settings.max_waiters, _start_manager)
    children = [
        ctx.Process(target=_child_server, args=(settings, leases), daemon=True)
        for _ in range(settings.processes)
    ]
    for child in children:
        child.start()
    _announce(settings, settings.port)
    try:  # one server that stops (it could not bind, it crashed) stops the proxy
        mp.connection.wait([child.sentinel for child in children])
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # each stops its server with the same grace (_child_server)
        for child in children:
            child.join(10)
        manager.shutdown()
    failed = [c.exitcode for c in children if c.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        raise StorageError(
            f"storage proxy: {len(failed)} of its processes failed (exit codes {failed})"
        )


def _refuse_a_taken_port(host: str, port: int) -> None:
    """Servers sharing a port with SO_REUSEPORT would also share it with another such proxy of
    the same user, splitting the workers between two lease tables: a plain bind tells."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as e:
        why = os.strerror(e.errno) if e.errno else str(e)  # create_server appends the address
        raise StorageError(f"storage proxy cannot listen on {host}:{port}: {why}") from e


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _die_with_parent() -> None:
    """SIGTERM this process when the proxy's parent dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no orphaned server keeps the port; elsewhere nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _start_manager() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which shuts it down
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()


def _child_server(settings: ProxySettings, leases: LeaseTable) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops us
    signal.signal(signal.SIGTERM, _interrupt)
    _die_with_parent()
    try:
        server, _ = make_proxy_server(settings, leases)
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        os._exit(2)  # at once: the parent stops the siblings, and its SIGTERM must find none here
    except KeyboardInterrupt:  # stopped while starting: a sibling could not start
        return
    server.start()
    _serve_until_stopped(server)


class _FencedService(OptunaStorageProxyService):
    """Optuna's servicer; the two writes that add to a study's count honour the lease."""

    def __init__(self, storage: BaseStorage, leases: LeaseTable) -> None:
        super().__init__(storage)
        self._leases = leases

    def CreateNewTrial(self, request, context):
        with self._fence(context):
            return super().CreateNewTrial(request, context)

    def SetTrialStateValues(self, request, context):
        if request.state != api_pb2.RUNNING:  # finishing or failing a trial never needs the lease
            return super().SetTrialStateValues(request, context)
        with self._fence(context):
            return super().SetTrialStateValues(request, context)

    @contextmanager
    def _fence(self, context: grpc.ServicerContext) -> Iterator[None]:
        held = wire.parse_lease_header(context.invocation_metadata())
        if held is None:  # a plain Optuna client, or a worker outside its turn: not fenced
            yield
            return
        with self._leases.fenced(*held) as valid:
            if not valid:
                context.abort(grpc.StatusCode.ABORTED, wire.LEASE_LOST)
            yield


def claim_trial(storage: SharedReads, leases: LeaseTable, study_id: int, n_trials: int) -> dict:
    """A worker's whole turn in one call, under the study lease taken here for the few
    milliseconds it needs: while the finished and running trials leave room under n_trials,
    take the oldest queued trial or create a new one, RUNNING, for the caller; a new one comes
    back whole (wire.encode_trial), so the caller's ask reads nothing. A worker that holds the
    lease itself (to fail stale trials and queue their retries, to place a grid point) excludes
    every claim meanwhile. {"busy": True} when the lease stayed taken for MAX_WAIT_S."""
    token = leases.acquire(study_id, wire.CLAIM_TTL_S, wire.MAX_WAIT_S)
    if token is None:
        return {"busy": True}
    try:
        states = storage.count_states(study_id)
        taken = (
            states[TrialState.COMPLETE] + states[TrialState.PRUNED] + states[TrialState.RUNNING]
        )
        if taken >= n_trials:
            return {"trial_id": None}
        for trial in sorted(storage.waiting_trials(study_id), key=lambda t: t.number):
            with suppress(UpdateFinishedTrialError):  # finished meanwhile: not ours to take
                if storage.set_trial_state_values(trial._trial_id, TrialState.RUNNING):
                    return {"trial_id": trial._trial_id}
        trial = storage.create_running_trial(study_id)
        return {"trial_id": trial._trial_id, "trial": wire.encode_trial(_to_proto_trial(trial))}
    finally:
        leases.release(study_id, token)


def _study_handler(
    leases: LeaseTable, storage: SharedReads, clock: Callable[[], float]
) -> grpc.GenericRpcHandler:
    """The calls the proxy adds to Optuna's: the lease, the two reads of a turn under it, the
    common turn as one call, a batch of writes as one call, and the stale trials."""
    watches: defaultdict[int, StaleWatch] = defaultdict(StaleWatch)  # per study

    def acquire(body: dict, context: grpc.ServicerContext) -> dict:
        wait = min(float(body["wait_s"]), wire.MAX_WAIT_S)
        return {"token": leases.acquire(int(body["study_id"]), float(body["ttl_s"]), wait)}

    def release(body: dict, context: grpc.ServicerContext) -> dict:
        leases.release(int(body["study_id"]), str(body["token"]))
        return {}

    def count_states(body: dict, context: grpc.ServicerContext) -> dict:
        return storage.tally(int(body["study_id"])).to_wire()

    def waiting_trials(body: dict, context: grpc.ServicerContext) -> api_pb2.GetTrialsReply:
        return api_pb2.GetTrialsReply(
            trials=[_to_proto_trial(t) for t in storage.waiting_trials(int(body["study_id"]))]
        )

    def claim(body: dict, context: grpc.ServicerContext) -> dict:
        return claim_trial(storage, leases, int(body["study_id"]), int(body["n_trials"]))

    def stale_trials(body: dict, context: grpc.ServicerContext) -> dict:
        study_id, read_at = int(body["study_id"]), clock()
        beats = storage.running_beats(study_id)
        return {"trial_ids": watches[study_id].stale_ids(beats, read_at, float(body["grace_s"]))}

    def apply_writes(body: dict, context: grpc.ServicerContext) -> dict:
        # The status codes of Optuna's servicer, which its client turns back into these errors.
        try:
            write_in_one_transaction(
                storage._backend, [Write.from_wire(w) for w in body["writes"]]
            )
        except KeyError as e:
            context.abort(grpc.StatusCode.NOT_FOUND, str(e))
        except UpdateFinishedTrialError as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
        return {}

    json_methods = {
        wire.ACQUIRE: acquire,
        wire.RELEASE: release,
        wire.COUNT_STATES: count_states,
        wire.CLAIM_TRIAL: claim,
        wire.APPLY_WRITES: apply_writes,
        wire.STALE_TRIALS: stale_trials,
    }
    methods = {
        name: grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=wire.decode, response_serializer=wire.encode
        )
        for name, fn in json_methods.items()
    }
    methods[wire.WAITING_TRIALS] = grpc.unary_unary_rpc_method_handler(
        waiting_trials,
        request_deserializer=wire.decode,
        response_serializer=api_pb2.GetTrialsReply.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(wire.SERVICE, methods)
