"""The connection budget: what a PostgreSQL server still takes, and the one-line refusal."""

from __future__ import annotations

import pytest

from storage import StorageError
from storage.pg_budget import check_room, per_process, read_server_connections
from storage.rdb import WORKER_POOL, Pool
from testing.pg_server import PostgresServer


@pytest.mark.postgres
def test_room_is_max_connections_minus_reserved_minus_in_use(postgres: PostgresServer) -> None:
    server = read_server_connections(postgres.url)
    assert (
        server is not None and server.max_connections == 60 and server.reserved == 3
    )  # testing.pg_server, PostgreSQL's default
    assert server.free == 60 - 3 - server.in_use
    assert per_process() == WORKER_POOL.size + WORKER_POOL.overflow == 4


@pytest.mark.postgres
def test_too_many_workers_for_the_server_are_refused_in_one_line(postgres: PostgresServer) -> None:
    check_room(postgres.url, 2)
    with pytest.raises(StorageError) as refused:
        check_room(postgres.url, 20)
    message = str(refused.value)
    assert "\n" not in message and "20 workers would need up to 80 connections" in message
    assert (
        "run at most" in message and "hpo storage-proxy" in message and "***" in message
    )  # the password stays hidden
    check_room(postgres.url, 1, Pool(size=10, overflow=0), what="the storage proxy")


def test_other_databases_are_not_counted(tmp_path) -> None:
    assert read_server_connections(f"sqlite:///{tmp_path}/optuna.db") is None
    check_room(f"sqlite:///{tmp_path}/optuna.db", 1000)
