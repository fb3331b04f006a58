"""A worker's side of `hpo storage-proxy`: Optuna's GrpcStorageProxy, plus what a fleet of
workers needs from it that Optuna's client lacks.

- Every call has a deadline and the channel sends keepalives, so a cut link fails calls within
  seconds (they are retried as outages) instead of hanging on a dead connection.
- Heartbeats through the storage API (storage.attr_heartbeat): Optuna's `fail_stale_trials`
  and its heartbeat thread work on this client as on a database.
- The study lease (`study_lease`): the study lock, held in the proxy. While a worker holds it,
  its calls carry the token, and the proxy refuses its trial-creating writes once the lease has
  passed to someone else.
- A claimed trial (`claim_trial`): the common turn (count, then take a queued trial or create
  one) made by the proxy in one call, holding the lease for milliseconds rather than for a
  worker's round trips; the worker's next `ask` gets the claimed trial.
- A batch of writes (storage.batched_writes) in one call, and the stale trials asked of the
  proxy, which watches the heartbeats.
"""

from __future__ import annotations

import collections
import random
import time
import warnings
from collections import Counter
from collections.abc import Callable, Container
from typing import Any

import grpc
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import GrpcStorageProxy
from optuna.storages._grpc.auto_generated import api_pb2, api_pb2_grpc
from optuna.storages._grpc.client import GrpcClientCache
from optuna.storages._grpc.servicer import _from_proto_trial
from optuna.trial import FrozenTrial, TrialState

from storage import proxy_wire as wire
from storage.attr_heartbeat import AttrHeartbeat
from storage.batched_writes import BatchedWrites, Write
from storage.errors import StorageError
from storage.tally import Tally

CALL_TIMEOUT_S = 60.0  # a GetTrials of a large study on a busy proxy stays well under this
LEASE_TTL_S = 10.0  # a worker killed while holding the lease delays the others this long at most
ACQUIRE_BACKOFF_S = (0.05, 1.0)  # a refused worker's first and longest pause before it asks again
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.keepalive_time_ms", 10_000),  # a dead link is noticed within ~15 s
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 500),
    ("grpc.max_reconnect_backoff_ms", 5_000),  # back within seconds once the link returns
]


class ProxyStorage(BatchedWrites, GrpcStorageProxy, AttrHeartbeat):
    """GrpcStorageProxy with deadlines, storage-API heartbeats, the study lease and batched
    writes."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        heartbeat_interval: int | None = 60,
        grace_period: int | None = None,
        retry_failed_trials: int = 3,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self._timeout_s = timeout_s
        self._lease: tuple[int, str] | None = None
        self._claimed: dict[int, int] = {}  # study id → the trial claimed for the next ask
        self._handed: FrozenTrial | None = None  # the last claim's trial, as it was created
        self.init_heartbeat(heartbeat_interval, grace_period, retry_failed_trials)
        with warnings.catch_warnings():  # "experimental" since Optuna 4.2
            warnings.simplefilter("ignore", ExperimentalWarning)
            super().__init__(host=host, port=port)

    def _setup(self) -> None:
        channel = grpc.insecure_channel(f"{self._host}:{self._port}", options=_CHANNEL_OPTIONS)
        self._channel = grpc.intercept_channel(channel, _CallOptions(self))
        self._stub = api_pb2_grpc.StorageServiceStub(self._channel)
        self._cache = GrpcClientCache(self._stub)
        json_call = {"request_serializer": wire.encode, "response_deserializer": wire.decode}
        self._acquire = self._channel.unary_unary(f"/{wire.SERVICE}/{wire.ACQUIRE}", **json_call)
        self._release = self._channel.unary_unary(f"/{wire.SERVICE}/{wire.RELEASE}", **json_call)
        self._count_states = self._channel.unary_unary(
            f"/{wire.SERVICE}/{wire.COUNT_STATES}", **json_call
        )
        self._claim = self._channel.unary_unary(f"/{wire.SERVICE}/{wire.CLAIM_TRIAL}", **json_call)
        self._stale_trials = self._channel.unary_unary(
            f"/{wire.SERVICE}/{wire.STALE_TRIALS}", **json_call
        )
        self._apply_writes = self._channel.unary_unary(
            f"/{wire.SERVICE}/{wire.APPLY_WRITES}", **json_call
        )
        self._waiting_trials = self._channel.unary_unary(
            f"/{wire.SERVICE}/{wire.WAITING_TRIALS}",
            request_serializer=wire.encode,
            response_deserializer=api_pb2.GetTrialsReply.FromString,
        )

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        for key in (
            "_acquire",
            "_release",
            "_count_states",
            "_claim",
            "_apply_writes",
            "_stale_trials",
            "_waiting_trials",
            "_lease",
            "_claimed",
            "_handed",
        ):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self._lease, self._claimed, self._handed = None, {}, None
        super().__setstate__(state)
        self.init_heartbeat(self._beat_interval, self._grace_s, self._retry._max_retry or 0)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        if states is not None and list(states) == [TrialState.WAITING]:
            if study_id in self._claimed:  # the trial for this ask is claimed: take no other
                return []
            return self.waiting_trials(study_id)  # Optuna taking a queued trial: the queue alone
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        trial, self._handed = self._handed, None  # one use: Optuna's ask after the claim
        if trial is not None and trial._trial_id == trial_id:
            return trial
        return super().get_trial(trial_id)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        if template_trial is None and study_id in self._claimed:
            return self._claimed.pop(study_id)  # Optuna's ask, after a claim: the claimed trial
        return super().create_new_trial(study_id, template_trial)

    def claim_trial(self, study_id: int, n_trials: int) -> bool:
        """Have the proxy count the study's finished and running trials and, while they leave
        room under `n_trials`, take a queued trial or create one, all under the study lease in
        one call (storage.proxy_server.claim_trial). True: the trial is RUNNING, and this
        worker's next `ask` gets it (a new trial as the proxy created it, without reading it back).
        False: by the database's count there is no room."""
        request = {"study_id": study_id, "n_trials": n_trials}
        reply = _until_granted(lambda: self._claim(request), lambda r: not r.get("busy"))
        if reply["trial_id"] is None:
            return False
        self._claimed[study_id] = int(reply["trial_id"])
        # A trial created for this claim comes whole; one taken from the queue is read by ask.
        created = reply.get("trial")
        self._handed = (
            _from_proto_trial(wire.decode_trial(created, api_pb2.Trial)) if created else None
        )
        return True

    def apply_writes(self, writes: list[Write]) -> None:
        """The writes in one call and one transaction (storage.proxy_server), with the errors
        Optuna's client raises for each."""
        try:
            self._apply_writes({"writes": [w.to_wire() for w in writes]})
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                raise KeyError(e.details()) from e
            if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise UpdateFinishedTrialError(e.details()) from e
            raise

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Asked of the proxy, which watches the running trials' beats by its own clock with one
        small query (storage.proxy_server): no worker reads every running trial to look."""
        if self.get_heartbeat_interval() is None:
            return []
        reply = self._stale_trials({"study_id": study_id, "grace_s": self._grace_s})
        return [int(i) for i in reply["trial_ids"]]

    def count_states(self, study_id: int) -> Counter[TrialState]:
        """How many of the study's trials are in each state, counted by the database now."""
        return self.tally(study_id).states

    def tally(self, study_id: int) -> Tally:
        """The state counts and the finished trials' durations (storage.tally), from the database."""
        return Tally.from_wire(self._count_states({"study_id": study_id}))

    def waiting_trials(self, study_id: int) -> list[FrozenTrial]:
        """The study's queued trials, read from the database now."""
        return [_from_proto_trial(t) for t in self._waiting_trials({"study_id": study_id}).trials]

    def study_lease(self, study_id: int, ttl_s: float = LEASE_TTL_S) -> ProxyLease:
        return ProxyLease(self, study_id, ttl_s)

    def lease_metadata(self) -> list[tuple[str, str]]:
        return [wire.lease_header(*self._lease)] if self._lease else []


class ProxyLease:
    """The study lock of workers on a proxy (hpo.study.lock's interface: acquire, release)."""

    def __init__(self, storage: ProxyStorage, study_id: int, ttl_s: float) -> None:
        self.storage, self.study_id, self.ttl_s = storage, study_id, ttl_s

    def acquire(self) -> None:
        """Ask until the proxy grants the lease. The proxy lets a bounded number of calls wait
        for it and refuses the rest at once, so a refused worker backs off (doubling, with
        jitter, up to a second) instead of asking again and again: a crowd of workers spinning
        on the proxy would slow down the very calls the lease's holder makes."""
        request = {"study_id": self.study_id, "ttl_s": self.ttl_s, "wait_s": wire.MAX_WAIT_S}
        reply = _until_granted(lambda: self.storage._acquire(request), lambda r: r["token"])
        self.storage._lease = (self.study_id, reply["token"])

    def release(self) -> None:
        held, self.storage._lease = self.storage._lease, None
        if held is None:
            return
        try:  # noqa: SIM105
            self.storage._release({"study_id": held[0], "token": held[1]})
        except grpc.RpcError:
            pass  # the proxy is unreachable: the lease runs out by itself


def _until_granted(call: Callable[[], dict], granted: Callable[[dict], Any]) -> dict:
    """`call` again until its reply is `granted`, pausing between refusals: doubling, with
    jitter, up to a second."""
    backoff = ACQUIRE_BACKOFF_S[0]
    while not granted(reply := call()):
        time.sleep(random.uniform(0.5, 1.0) * backoff)
        backoff = min(2 * backoff, ACQUIRE_BACKOFF_S[1])
    return reply


class _Details(
    collections.namedtuple(
        "_Details",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _CallOptions(grpc.UnaryUnaryClientInterceptor):
    """A deadline on every call, and the lease token while the worker holds one."""

    def __init__(self, storage: ProxyStorage) -> None:
        self.storage = storage

    def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or ()), *self.storage.lease_metadata()]
        timeout = details.timeout if details.timeout is not None else self.storage._timeout_s
        call = _Details(
            details.method,
            timeout,
            metadata,
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(call, request)


def open_proxy(
    host: str, port: int, *, connect_timeout_s: float = 10.0, **kwargs: Any
) -> ProxyStorage:
    """A client of the proxy at host:port, once it answers; one line if it does not."""
    storage = ProxyStorage(host, port, **kwargs)
    try:
        storage.wait_server_ready(timeout=connect_timeout_s)
    except ConnectionError:
        storage.close()
        raise StorageError(
            f"no storage proxy answers at grpc://{host}:{port} within {connect_timeout_s:.0f} s; "
            "start one there with `hpo storage-proxy` (make storage-proxy), or check the address and the network"
        ) from None
    return storage
