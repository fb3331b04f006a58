"""Optuna RDB storage with engine settings, heartbeats and retries tuned per backend."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models
from optuna.trial import TrialState
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from storage.attr_heartbeat import StaleWatch
from storage.batched_writes import BatchedWrites, Write, write_in_one_transaction
from storage.errors import StorageError
from storage.outage import is_proxy_outage
from storage.urls import proxy_address, redact

_log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Pool:
    """A PostgreSQL connection pool's bounds: at most size + overflow connections."""

    size: int
    overflow: int


WORKER_POOL = Pool(
    size=2, overflow=2
)  # only the trial loop, the study lock and the heartbeat thread use them


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = 60,
    grace_period: int | None = None,
    retry_failed_trials: int = 3,
    pool: Pool = WORKER_POOL,
) -> BaseStorage:
    """Open the Optuna storage at `url` (as returned by `resolve_storage_url`): an RDBStorage,
    or for grpc://host:port a client of `hpo storage-proxy` (storage.proxy_client).

    With heartbeats on, a trial whose worker died (SIGKILL, OOM, preemption) is marked FAIL once
    its heartbeat is `grace_period` seconds old (default 2 x interval) and re-queued with the
    same params, at most `retry_failed_trials` times. Heartbeats only run under
    `Study.optimize`, not ask/tell.
    """
    address = proxy_address(url)
    if address is not None:
        return _open_proxy(
            *address,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            retry_failed_trials=retry_failed_trials,
        )

    def create() -> RDBStorage:
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", ExperimentalWarning)
            return _Storage(
                _escape_template(url),
                engine_kwargs=_engine_kwargs(url, pool),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=retry_failed_trials
                ),
            )

    try:
        # Workers started together on a fresh database race to create Optuna's tables.
        return with_retries(
            create, attempts=4, delay=0.2, what="creating Optuna tables", retry_if=_is_schema_race
        )
    except ImportError as e:
        raise StorageError(
            f"no database driver for {redact(url)}: {_reason(e.__cause__ or e)}; "
            "for PostgreSQL install psycopg[binary] and use a postgresql+psycopg:// URL"
        ) from e
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
        advice = (
            "point --storage at an Optuna SQLite file or at a new path"
            if url.startswith("sqlite")
            else "check the host, port, credentials and that the database server is running"
        )
        raise StorageError(f"cannot open storage {redact(url)}: {_reason(e)}; {advice}") from e


def _open_proxy(host: str, port: int, **heartbeat: Any) -> BaseStorage:
    try:
        from storage.proxy_client import open_proxy
    except ImportError as e:
        raise StorageError(
            f"grpc:// storage URLs need grpcio: pip install 'hpo-text[proxy]' ({e})"
        ) from e
    return open_proxy(host, port, **heartbeat)


def with_retries(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    what: str = "storage operation",
    delay: float = 1.0,
    retry_if: Callable[[BaseException], bool] | None = None,
) -> T:
    """Call `fn`, retrying transient database errors with exponential backoff (1, 2, 4... x delay).

    By default retries OperationalError (SQLite lock timeouts, PostgreSQL restarts/failovers),
    which Optuna raises either directly or wrapped in its StorageInternalError.
    """
    retry_if = retry_if or _is_transient
    for attempt in range(1, attempts):
        try:
            return fn()
        except Exception as e:
            if not retry_if(e):
                raise
            wait = delay * 2 ** (attempt - 1)
            _log.warning(
                "%s failed (%s); retry %d/%d in %.1fs",
                what,
                _reason(e),
                attempt,
                attempts - 1,
                wait,
            )
            time.sleep(wait)
    return fn()


class _Storage(BatchedWrites, RDBStorage):
    """RDBStorage that tunes SQLite connections, keeps heartbeats alive across DB blips and
    writes a batch of writes in one transaction."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tune_engine(self.engine)
        self._beatless_watch = StaleWatch()

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state.pop("_beatless_watch", None)  # holds a lock; what it saw is this process's
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)  # unpickling (e.g. into a worker process) builds a new engine
        _tune_engine(self.engine)
        self._beatless_watch = StaleWatch()

    def apply_writes(self, writes: list[Write]) -> None:
        write_in_one_transaction(self, writes)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """Optuna's stale trials (a heartbeat older than the grace period), and the running
        trials that have had no heartbeat at all for the grace period by this process's clock:
        Optuna never looks at those, yet a worker cut off by an outage between creating its
        trial and its first beat leaves one, RUNNING for good, and the study waits on it."""
        stale = super()._get_stale_trial_ids(study_id)
        read_at = time.monotonic()
        beatless = {trial_id: None for trial_id in self._beatless_running(study_id)}
        grace = self.grace_period or 2 * (self.heartbeat_interval or 0)
        return stale + self._beatless_watch.stale_ids(beatless, read_at, grace)

    def _beatless_running(self, study_id: int) -> list[int]:
        session = self.scoped_session()
        try:
            heartbeats = models.TrialHeartbeatModel
            rows = (
                session.query(models.TrialModel.trial_id)
                .outerjoin(heartbeats, heartbeats.trial_id == models.TrialModel.trial_id)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(heartbeats.trial_heartbeat_id.is_(None))
            )
            return [trial_id for (trial_id,) in rows]
        finally:
            self.scoped_session.remove()

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna's heartbeat thread dies on the first exception, after which the live trial goes
        # stale and gets failed by another worker; skip the beat instead and try next interval.
        try:
            super().record_heartbeat(trial_id)
        except Exception as e:
            if not _is_transient(e):
                raise
            _log.warning("heartbeat for trial id %d skipped: %s", trial_id, _reason(e))


def _engine_kwargs(url: str, pool: Pool) -> dict[str, Any]:
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        return {
            "pool_pre_ping": True,  # survive server restarts and idle-connection reaping
            "pool_size": pool.size,
            "max_overflow": pool.overflow,
            "pool_recycle": 300,
            "connect_args": {"connect_timeout": 10},
        }
    if backend == "sqlite":
        # Writers wait up to 60 s for the lock instead of failing with "database is locked".
        return {"connect_args": {"timeout": 60}}
    return {}


def _escape_template(url: str) -> str:
    """Escape braces: RDBStorage runs `url.format(SCHEMA_VERSION=...)` on the URL it is given."""
    return url.replace("{", "{{").replace("}", "}}")


def _tune_engine(engine: Engine) -> None:
    """Put SQLite in WAL mode so readers never block the writer, on every pooled connection."""
    if engine.dialect.name != "sqlite":
        return
    event.listen(engine, "connect", _sqlite_pragmas)
    engine.dispose()  # drop connections RDBStorage opened before the listener existed


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints only
    cursor.close()


def _is_transient(e: BaseException) -> bool:
    return isinstance(_unwrap(e), OperationalError) or is_proxy_outage(e)


def _is_schema_race(e: BaseException) -> bool:
    """True for errors from two processes creating the same table or version row at once."""
    e = _unwrap(e)
    return isinstance(e, IntegrityError) or "already exists" in str(e)


def _unwrap(e: BaseException) -> BaseException:
    if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ is not None:
        return e.__cause__
    return e


def _reason(e: BaseException) -> str:
    """One line saying what the database driver reported, without the SQL or the URL."""
    e = _unwrap(e)
    lines = str(getattr(e, "orig", None) or e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
