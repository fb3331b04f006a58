"""Shared fixtures. `postgres`: a throwaway PostgreSQL server for the whole test session.

Without server binaries the PostgreSQL tests skip, except under CI (env CI set), where they
fail so a broken CI image cannot pass by skipping. `.ci/postgres.sh` installs the binaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.pg_server import PostgresServer, PostgresUnavailable, start_server, teardown


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Start a fresh PostgreSQL cluster on a free 127.0.0.1 port; removed after the session."""
    try:
        server = start_server()
    except PostgresUnavailable as e:
        _unavailable(str(e))
    try:
        yield server
    finally:
        teardown(server)


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresServer) -> str:
    """The `postgres` server's URL, for tests that need nothing else."""
    return postgres.url


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def _artifacts_out_of_the_repo(tmp_path_factory) -> Iterator[None]:
    """Studies on PostgreSQL keep their artifacts under HPO_ARTIFACT_DIR (default runs/): tests
    must not write into the checkout."""
    previous = os.environ.get("HPO_ARTIFACT_DIR")
    os.environ["HPO_ARTIFACT_DIR"] = str(tmp_path_factory.mktemp("artifacts"))
    yield
    if previous is None:
        os.environ.pop("HPO_ARTIFACT_DIR", None)
    else:
        os.environ["HPO_ARTIFACT_DIR"] = previous
