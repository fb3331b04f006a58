"""Optuna's cache layer for the proxy, with reads that do not queue behind each other.

Every worker's turn re-reads the study's unfinished trials; behind a proxy they all arrive at
one process. Optuna's _CachedStorage runs each as its own query while holding its one lock, which
every other call on the proxy (a trial's parameter, a cached trial) waits for. Here:
- the query runs outside that lock, and only the merge into the cache takes it;
- concurrent reads of one study share a query: a read joins the next query to start, so it sees
  every write that completed before it arrived (a query already under way is never joined);
- a trial created for a worker's claim comes back whole (`create_running_trial`), so the worker
  does not read it back;
- `count_states` (or `tally`, with the finished trials' durations) and `waiting_trials` answer
  the study lock's two questions (how many trials are finished or running, which are queued)
  with small queries instead of the whole study, and `running_beats` reads the running trials'
  heartbeats alone.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict

from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import models
from optuna.trial import FrozenTrial, TrialState

from storage.attr_heartbeat import BEAT_ATTR
from storage.tally import Tally, query_tally


class SharedReads(_CachedStorage):
    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._queries = threading.Condition()
        self._started: defaultdict[int, int] = defaultdict(
            int
        )  # per study: queries started, numbered from 1
        self._fresh: defaultdict[int, int] = defaultdict(
            int
        )  # the number of the latest that succeeded
        self._busy: set[int] = set()

    def count_states(self, study_id: int) -> Counter[TrialState]:
        return self.tally(study_id).states

    def tally(self, study_id: int) -> Tally:
        return query_tally(self._backend, study_id)

    def running_beats(self, study_id: int) -> dict[int, str | None]:
        """Each running trial's heartbeat attribute as stored (None before its first beat)."""
        trial, attr = models.TrialModel, models.TrialSystemAttributeModel
        session = self._backend.scoped_session()
        try:
            rows = (
                session.query(trial.trial_id, attr.value_json)
                .outerjoin(attr, (attr.trial_id == trial.trial_id) & (attr.key == BEAT_ATTR))
                .filter(trial.study_id == study_id, trial.state == TrialState.RUNNING)
                .all()
            )
        finally:
            self._backend.scoped_session.remove()
        return dict(rows)

    def create_running_trial(self, study_id: int) -> FrozenTrial:
        """create_new_trial, returning the trial as the database created it, from the cache it
        has just been put in: the worker that claims it needs no read of it."""
        trial_id = self.create_new_trial(study_id)  # which caches the trial it created
        with self._lock:
            _, number = self._trial_id_to_study_id_and_number[trial_id]
            return self._studies[study_id].trials[number]

    def waiting_trials(self, study_id: int) -> list[FrozenTrial]:
        return self._backend._get_trials(
            study_id,
            states=(TrialState.WAITING,),
            included_trial_ids=set(),
            trial_id_greater_than=-1,
        )

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._queries:
            need = (
                self._started[study_id] + 1
            )  # the next query to start began after this read arrived
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
            self._refresh(study_id)
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

    def _refresh(self, study_id: int) -> None:
        """_CachedStorage._read_trials_from_remote_storage, with the query outside its lock (one
        query per study at a time: _query)."""
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            unfinished, last_finished = (
                set(study.unfinished_trial_ids),
                study.last_finished_trial_id,
            )
        trials = self._backend._get_trials(
            study_id,
            states=None,
            included_trial_ids=unfinished,
            trial_id_greater_than=last_finished,
        )
        if not trials:
            return
        with self._lock:
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:
                if not trial.state.is_finished():
                    study.unfinished_trial_ids.add(trial._trial_id)
                    continue
                study.last_finished_trial_id = max(study.last_finished_trial_id, trial._trial_id)
                study.unfinished_trial_ids.discard(trial._trial_id)
