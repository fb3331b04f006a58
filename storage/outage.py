"""Which proxy errors are outages worth waiting out (the proxy restarting, a link down, a lost
lease) rather than bugs. Database outages are sqlalchemy's OperationalError (storage.rdb)."""

from __future__ import annotations

import sys

_TRANSIENT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "ABORTED", "RESOURCE_EXHAUSTED"}


def is_proxy_outage(e: BaseException) -> bool:
    """True for a gRPC call that failed for want of a working link or proxy; grpc is imported
    only by processes that use the proxy, so its absence means no proxy error."""
    grpc = sys.modules.get("grpc")
    if grpc is None or not isinstance(e, grpc.RpcError) or not callable(getattr(e, "code", None)):
        return False
    return e.code().name in _TRANSIENT_CODES
