"""Study leases held in the storage proxy: the study lock for workers that reach the database
only through the proxy.

A lease is a token per study with a time to live, kept in the proxy's memory and timed by its
machine's monotonic clock alone (the workers' clocks never matter). A proxy of several
processes shares one table (`shared_lease_table`). A worker that dies or loses its link
holding one delays the others by at most the time to live. Being late is not enough to corrupt a
count: the writes that add to it (creating a trial, taking a queued one) carry the token and are
refused once another worker holds the lease (`fenced`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from multiprocessing.managers import SyncManager
from typing import Any, NamedTuple


class _Lease(NamedTuple):
    token: str
    expires: float


class LeaseTable:
    """One lease per study id; thread-safe (the proxy serves each call on a thread of its own).
    `condition` and `held` default to this process's own; `shared_lease_table` passes ones that
    processes forked from the caller share."""

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        max_waiters: int = 32,
        *,
        condition: Any = None,
        held: MutableMapping[int, _Lease] | None = None,
    ) -> None:
        self._clock = clock
        self._changed = condition if condition is not None else threading.Condition()
        self._held: MutableMapping[int, _Lease] = {} if held is None else held
        # Waiters are counted per process: each waits on one of its own process's threads.
        self._waiters, self._max_waiters = 0, max_waiters

    def acquire(self, study_id: int, ttl_s: float, wait_s: float) -> str | None:
        """A new token if the study's lease is free (or expired) within `wait_s`, else None. At
        most `max_waiters` calls wait at once (each holds one of the proxy's threads, which the
        lease's holder needs for its own calls); the others are answered at once."""
        with self._changed:
            if self._waiters >= self._max_waiters:
                wait_s = 0
            self._waiters += 1
            try:
                return self._acquire(study_id, ttl_s, self._clock() + wait_s)
            finally:
                self._waiters -= 1

    def _acquire(self, study_id: int, ttl_s: float, deadline: float) -> str | None:
        """Call with the condition held."""
        while True:
            now = self._clock()
            lease = self._held.get(study_id)
            if lease is None or lease.expires <= now:
                token = secrets.token_hex(8)
                self._held[study_id] = _Lease(token, now + ttl_s)
                return token
            if deadline <= now:
                return None
            self._changed.wait(min(deadline, lease.expires) - now)

    def release(self, study_id: int, token: str) -> None:
        """Free the lease if `token` still holds it; a late release of a lost lease does nothing."""
        with self._changed:
            lease = self._held.get(study_id)
            if lease is not None and lease.token == token:
                del self._held[study_id]
                self._changed.notify_all()

    @contextmanager
    def fenced(self, study_id: int, token: str) -> Iterator[bool]:
        """Whether `token` holds the study's lease, kept true for the duration of the block: a
        lease that ran out may still finish its write if nobody has taken it since."""
        with self._changed:
            lease = self._held.get(study_id)
            yield lease is not None and lease.token == token


def shared_lease_table(
    ctx: BaseContext, max_waiters: int, initializer: Callable[[], None] | None = None
) -> tuple[LeaseTable, Any]:
    """A table for the proxy processes the caller forks after this call, and the manager process
    that keeps its leases (shut it down after them; `initializer` runs in it first). The lock is
    a process-shared condition; on Linux CLOCK_MONOTONIC is one clock for every process of the
    machine."""
    manager = SyncManager(ctx=ctx)
    manager.start(initializer)
    table = LeaseTable(max_waiters=max_waiters, condition=ctx.Condition(), held=manager.dict())
    return table, manager
