"""Shared fixtures: the real data sets, a throwaway PostgreSQL server for the whole session, and
`storage_url`, which runs a test once on SQLite and once on PostgreSQL.

Without the data or the server binaries their tests skip, except under CI (env CI set), where
they fail so a broken CI image cannot pass by skipping. `.ci/postgres.sh` installs the binaries.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from testing.data import DataMissing, RealData
from testing.data import real_data as find_real_data
from testing.pg_server import PostgresServer, PostgresUnavailable, running_server


@pytest.fixture(scope="session")
def real_data() -> RealData:
    """The real data sets under DATA_DIR (default ../shared/data)."""
    try:
        return find_real_data()
    except DataMissing as e:
        _unavailable(str(e))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on a free 127.0.0.1 port; removed after the session."""
    try:
        with running_server() as server:
            yield server
    except PostgresUnavailable as e:
        _unavailable(str(e))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh SQLite file, then the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/optuna.db"
    return request.getfixturevalue("postgres").url


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
