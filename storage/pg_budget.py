"""How many more connections a PostgreSQL server takes, so that `hpo workers` refuses a worker
count that would run it out (the workers would fail at random with "too many clients").

Each worker process opens at most WORKER_POOL.size + WORKER_POOL.overflow connections: its trial
loop, the study's advisory lock and Optuna's heartbeat thread share that one pool. A worker on
`hpo storage-proxy` opens none; the proxy opens at most its own pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from storage.errors import StorageError
from storage.rdb import WORKER_POOL, Pool
from storage.urls import redact

_SETTINGS = "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', 'superuser_reserved_connections', 'reserved_connections')"
_IN_USE = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"


@dataclass(frozen=True)
class ServerConnections:
    max_connections: int
    reserved: (
        int  # for superusers (and, from PostgreSQL 16, roles with pg_use_reserved_connections)
    )
    in_use: int  # client connections open now, whoever holds them

    @property
    def free(self) -> int:
        return self.max_connections - self.reserved - self.in_use


def per_process(pool: Pool = WORKER_POOL) -> int:
    return pool.size + pool.overflow


def read_server_connections(url: str) -> ServerConnections | None:
    """The server's limits and current use, or None when they cannot be read (not PostgreSQL,
    or not allowed): then nothing is refused."""
    if make_url(url).get_backend_name() != "postgresql":
        return None
    engine = create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            settings = {name: int(value) for name, value in conn.execute(text(_SETTINGS))}
            in_use = int(conn.execute(text(_IN_USE)).scalar_one()) - 1  # not this connection
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    reserved = settings.get("superuser_reserved_connections", 0) + settings.get(
        "reserved_connections", 0
    )
    return ServerConnections(settings["max_connections"], reserved, in_use)


def check_room(
    url: str, processes: int, pool: Pool = WORKER_POOL, what: str | None = None
) -> None:
    """Refuse, in one line, `processes` more clients of `pool` each if the server lacks room."""
    what = what or f"{processes} workers"
    server = read_server_connections(url)
    need = processes * per_process(pool)
    if server is None or need <= server.free:
        return
    fits = max(0, server.free // per_process(pool))
    raise StorageError(
        f"{what} would need up to {need} connections to {redact(url)}, but it takes {server.free} more "
        f"(max_connections {server.max_connections} - {server.reserved} reserved - {server.in_use} in use): "
        f"run at most {fits}, raise max_connections, or put `hpo storage-proxy` in front of it"
    )
