"""Heartbeats written through the storage API, for storages that have no heartbeat table of
their own (Optuna's gRPC proxy client).

A running trial's worker bumps a counter in one of the trial's system attributes every interval.
The storage proxy declares the trial stale once it has seen the same counter for the grace period
by its own monotonic clock (`StaleWatch`), so no two machines' clocks are ever compared. Optuna's
machinery then does the rest as on a database: `fail_stale_trials` fails the trial, and the
stale-trial callback (RetryHeartbeatStaleTrialCallback) re-queues its parameters with the same
`failed_trial` and `retry_history` system attributes.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections import defaultdict
from dataclasses import dataclass

from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat

from storage.outage import is_proxy_outage

BEAT_ATTR = "hpo:beat"
_log = logging.getLogger(__name__)


@dataclass
class _Seen:
    beat: object
    since: float  # when this process first read `beat`, by its own monotonic clock


class StaleWatch:
    """What this process has read of each running trial's beat counter, and when."""

    def __init__(self) -> None:
        self._seen: dict[int, _Seen] = {}
        self._lock = threading.Lock()

    def stale_ids(self, beats: dict[int, object], read_at: float, grace_s: float) -> list[int]:
        """Ids of the trials whose beat has not moved over `grace_s` seconds of reads: `beats`
        (running trial id → what stands for its beat) was read at `read_at`; a trial missing
        from it is forgotten."""
        out = []
        with self._lock:
            before, self._seen = self._seen, {}
            for trial_id, beat in beats.items():
                seen = before.get(trial_id)
                if seen is None or seen.beat != beat:
                    seen = _Seen(beat, read_at)
                elif read_at - seen.since >= grace_s:
                    out.append(trial_id)
                self._seen[trial_id] = seen
        return out


class AttrHeartbeat(BaseHeartbeat):
    """Mixin for a BaseStorage: heartbeats as a counter in a trial system attribute. The storage
    still says which trials are stale (`_get_stale_trial_ids`)."""

    def init_heartbeat(
        self,
        interval_s: int | None,
        grace_period_s: int | None,
        max_retry: int,
    ) -> None:
        self._beat_interval = interval_s
        self._grace_s = grace_period_s or 2 * (interval_s or 0)
        with warnings.catch_warnings():  # "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", ExperimentalWarning)
            self._retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        self._beats: defaultdict[int, int] = defaultdict(int)

    def record_heartbeat(self, trial_id: int) -> None:
        # Optuna's heartbeat thread ends at the first exception: skip a beat rather than die.
        assert isinstance(self, BaseStorage)
        self._beats[trial_id] += 1
        try:
            self.set_trial_system_attr(trial_id, BEAT_ATTR, self._beats[trial_id])
        except UpdateFinishedTrialError:
            pass  # another worker failed it as stale; this worker's tell finds out
        except Exception as e:
            if not is_proxy_outage(e):
                raise
            _log.warning("heartbeat for trial id %d skipped: %s", trial_id, type(e).__name__)

    def get_heartbeat_interval(self) -> int | None:
        return self._beat_interval

    def get_heartbeat_stale_trial_callback(self) -> RetryHeartbeatStaleTrialCallback:
        return self._retry
