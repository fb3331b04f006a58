"""How far a study is, for the console line of each finished trial: trials done and to go, and
the time left estimated from the trials so far (pruned ones included, so the estimate counts
on pruning as often as it happened), or what is left of the study's time budget when that ends
it first."""

from __future__ import annotations

import math
from dataclasses import dataclass

from optuna.trial import TrialState

from storage.tally import Tally


@dataclass(frozen=True)
class Progress:
    done: int
    remaining: int
    seconds_left: float | None  # None: nothing finished yet to estimate from
    budget_ends_first: bool = False

    def __str__(self) -> str:
        left = (
            ""
            if self.seconds_left is None or not self.remaining
            else f", {duration(self.seconds_left)} left"
            + (" in the time budget" if self.budget_ends_first else "")
        )
        return f"[{self.done}/{self.done + self.remaining} done, {self.remaining} to go{left}]"


def study_progress(tally: Tally, n_trials: int, budget_left_s: float | None = None) -> Progress:
    """From the whole study's counts (all workers'): finished trials count, running ones run in
    parallel with this worker, so the remaining trials go that many at a time."""
    finished = tally.finished
    remaining = max(0, n_trials - finished)
    mean_s = tally.mean_finished_s
    if mean_s is None:
        return Progress(finished, remaining, None)
    at_once = max(1, min(remaining, tally.states[TrialState.RUNNING] + 1))
    estimate = math.ceil(remaining / at_once) * mean_s
    if budget_left_s is not None and budget_left_s < estimate:
        return Progress(finished, remaining, max(0.0, budget_left_s), budget_ends_first=True)
    return Progress(finished, remaining, estimate)


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"~{seconds / 60:.0f} min"
    return f"~{seconds / 3600:.1f} h"
