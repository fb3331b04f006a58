"""Optuna's cache layer for the proxy, with the concurrent reads of a study's trials sharing one
database query.

Every worker's turn re-reads the study's unfinished trials; behind a proxy they all arrive at
one process, where Optuna's _CachedStorage runs them one after another under a lock, each its
own query. Here a read joins the next query to start: it sees every write that completed before
it arrived (a query already under way is never joined), and the reads that came meanwhile are
answered by that one query too.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage


class SharedReads(_CachedStorage):
    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._queries = threading.Condition()
        self._started: defaultdict[int, int] = defaultdict(int)  # per study: queries started, numbered from 1
        self._fresh: defaultdict[int, int] = defaultdict(int)  # the number of the latest that succeeded
        self._busy: set[int] = set()

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._queries:
            need = self._started[study_id] + 1  # the next query to start began after this read arrived
            while self._fresh[study_id] < need:
                if study_id in self._busy:
                    self._queries.wait()
                    continue
                self._query(study_id)

    def _query(self, study_id: int) -> None:
        """Run one query with the condition released; a failed one leaves the waiters to retry."""
        self._started[study_id] += 1
        number = self._started[study_id]
        self._busy.add(study_id)
        self._queries.release()
        try:
            super()._read_trials_from_remote_storage(study_id)
            succeeded = True
        except BaseException:
            succeeded = False
            raise
        finally:
            self._queries.acquire()
            self._busy.discard(study_id)
            if succeeded:
                self._fresh[study_id] = max(self._fresh[study_id], number)
            self._queries.notify_all()
