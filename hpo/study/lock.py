"""The study-wide lock a worker holds while it counts trials and creates its own.

A PostgreSQL advisory lock, which the server frees when a killed worker's connection drops, an
flock beside a SQLite file, which the kernel frees when its holder dies, or, through `hpo
storage-proxy`, a lease held in the proxy (storage.proxy_client), which runs out when its holder
is gone and fences the writes of a holder that lost it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from pathlib import Path
from typing import Protocol

import optuna
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

_PG_LOCK_CLASS = (
    0x4850  # first key of PostgreSQL's two-key advisory lock; the second is the study id
)


class StudyLock(Protocol):
    def acquire(self) -> None: ...

    def release(self) -> None:
        """Idempotent: the trial's objective releases it, and the turn again afterwards."""


def study_lock(study: optuna.Study) -> StudyLock:
    """The proxy: its study lease; PostgreSQL: an advisory lock; a SQLite file: an flock on
    `<file>.lock`; anything else (SQLite in memory): a lock within this process only."""
    storage = study._storage  # from hpo.study.opening.open_study: an RDBStorage in Optuna's cache layer, or the proxy's client
    lease = getattr(storage, "study_lease", None)
    if lease is not None:
        return lease(study._study_id)
    engine: Engine = getattr(storage, "_backend", storage).engine
    if engine.dialect.name == "postgresql":
        return _PostgresLock(engine, study._study_id)
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return _FileLock(Path(f"{database}.lock"))
    return _LocalLock()


class _PostgresLock:
    def __init__(self, engine: Engine, study_id: int) -> None:
        self.engine, self.study_id = engine, study_id
        self._conn: Connection | None = None

    def acquire(self) -> None:
        conn = self.engine.connect()
        try:
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:c, :s)"),
                {"c": _PG_LOCK_CLASS, "s": self.study_id},
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.rollback()  # ends the transaction, which frees the lock
            conn.close()
        except SQLAlchemyError:  # the connection died, and the server freed the lock with it
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()


class _FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the file drops the flock


class _LocalLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False

    def acquire(self) -> None:
        self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()
