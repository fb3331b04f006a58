"""`hpo storage-proxy`: Optuna's gRPC storage proxy in front of one database, for many workers.

The workers hold no database connection: the proxy holds a bounded pool (`Pool`) and serves
every worker from it. It is Optuna's own servicer with two additions:
- the study lease (storage.lease), the study lock of workers that cannot take a database lock,
  and two small reads for the turn taken under it (storage.shared_reads);
- fencing: a call that creates a trial or takes a queued one while carrying a lease token is
  refused (ABORTED) unless that token still holds the study's lease, so a worker that lost its
  lease while cut off cannot add a trial beyond n_trials when its link returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from optuna.storages import BaseStorage
from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
from optuna.storages._grpc.servicer import OptunaStorageProxyService, _to_proto_trial

from storage import proxy_wire as wire
from storage.errors import StorageError
from storage.lease import LeaseTable
from storage.pg_budget import check_room
from storage.rdb import Pool, open_storage
from storage.shared_reads import SharedReads
from storage.urls import proxy_address, redact

_log = logging.getLogger(__name__)
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
    )  # the database connections: this is all the proxy ever opens

    @property
    def max_connections(self) -> int:
        return self.pool.size + self.pool.overflow


def make_proxy_server(settings: ProxySettings) -> tuple[grpc.Server, int]:
    """The server, bound but not started, and the port it bound (port 0 picks a free one)."""
    if proxy_address(settings.storage_url) is not None:
        raise StorageError(
            "hpo storage-proxy needs a database URL (postgresql://… or sqlite:///…), not another proxy"
        )
    check_room(settings.storage_url, 1, settings.pool, what="the storage proxy")
    rdb = open_storage(settings.storage_url, heartbeat_interval=None, pool=settings.pool)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="proxy"),
        options=_SERVER_OPTIONS,
    )
    leases = LeaseTable(
        max_waiters=max(1, settings.threads // 2)
    )  # the other half serves the holder and the trials
    storage = SharedReads(
        rdb
    )  # Optuna's cached layer (finished trials are read once), without its queueing
    api_pb2_grpc.add_StorageServiceServicer_to_server(_FencedService(storage, leases), server)
    server.add_generic_rpc_handlers([_study_handler(leases, storage)])
    try:
        port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    except RuntimeError as e:
        raise StorageError(
            f"storage proxy cannot listen on {settings.host}:{settings.port}: {e}"
        ) from e
    return server, port


def serve_proxy(settings: ProxySettings) -> None:
    """Serve until Ctrl-C or SIGTERM; calls in flight get a few seconds to finish."""
    server, port = make_proxy_server(settings)
    server.start()
    print(
        f"storage proxy for {redact(settings.storage_url)} on grpc://{settings.host}:{port} "
        f"({settings.threads} threads, at most {settings.max_connections} database connections); "
        f"workers: --storage grpc://{settings.host}:{port}",
        flush=True,
    )
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=5).wait()


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


def _study_handler(leases: LeaseTable, storage: SharedReads) -> grpc.GenericRpcHandler:
    """The calls the proxy adds to Optuna's: the lease, and the two reads of a turn under it."""

    def acquire(body: dict, context: grpc.ServicerContext) -> dict:
        wait = min(float(body["wait_s"]), wire.MAX_WAIT_S)
        return {"token": leases.acquire(int(body["study_id"]), float(body["ttl_s"]), wait)}

    def release(body: dict, context: grpc.ServicerContext) -> dict:
        leases.release(int(body["study_id"]), str(body["token"]))
        return {}

    def count_states(body: dict, context: grpc.ServicerContext) -> dict:
        return {state.name: n for state, n in storage.count_states(int(body["study_id"])).items()}

    def waiting_trials(body: dict, context: grpc.ServicerContext) -> api_pb2.GetTrialsReply:
        return api_pb2.GetTrialsReply(
            trials=[_to_proto_trial(t) for t in storage.waiting_trials(int(body["study_id"]))]
        )

    json_methods = {wire.ACQUIRE: acquire, wire.RELEASE: release, wire.COUNT_STATES: count_states}
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
