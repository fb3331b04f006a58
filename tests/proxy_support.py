"""`hpo storage-proxy` for tests: the proxy serves from threads of the test process, on a free
loopback port, in front of a real SQLite file or PostgreSQL server."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from storage.proxy_server import ProxySettings, make_proxy_server
from storage.rdb import Pool


@contextmanager
def running_proxy(
    storage_url: str,
    pool: Pool = Pool(size=4, overflow=0),  # noqa: B008
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """Yields the proxy's grpc:// URL; stopped (calls in flight cancelled) afterwards. `clock`
    times the trials' heartbeats."""
    server, port = make_proxy_server(
        ProxySettings(storage_url, host="127.0.0.1", port=0, threads=32, pool=pool), clock=clock
    )
    server.start()
    try:
        yield f"grpc://127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()
