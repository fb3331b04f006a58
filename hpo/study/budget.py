"""A study-wide time budget: no trial starts that would end after it.

The clock starts at the study's first turn under a budget and is stored in the study, so every
worker (and a resumed run) counts from the same moment. A trial is expected to take as long as
the finished trials took on average; before any has finished, trials start freely. Trials that
are running when the budget closes finish (or are pruned) as usual.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import stored


@dataclass(frozen=True)
class BudgetCheck:
    elapsed_s: float
    expected_trial_s: float
    budget_s: float

    @property
    def fits(self) -> bool:
        return self.elapsed_s + self.expected_trial_s <= self.budget_s

    def message(self, study_name: str) -> str:
        return (
            f"study {study_name}: time budget {self.budget_s / 60:.1f} min reached "
            f"({self.elapsed_s / 60:.1f} min used, a trial takes ~{self.expected_trial_s / 60:.1f} min); "
            "no new trials, running ones finish"
        )


def check_budget(
    study: optuna.Study, minutes: float, trials: list[FrozenTrial], now: float | None = None
) -> BudgetCheck:
    """Call under the study lock: the first call stores the start time."""
    now = time.time() if now is None else now
    started = study.user_attrs.get(stored.BUDGET_STARTED_AT)
    if started is None:
        study.set_user_attr(stored.BUDGET_STARTED_AT, now)
        started = now
    return BudgetCheck(
        elapsed_s=now - float(started),
        expected_trial_s=expected_duration_s(trials),
        budget_s=minutes * 60,
    )


def expected_duration_s(trials: list[FrozenTrial]) -> float:
    """Mean wall-clock seconds of the finished (complete or pruned) trials; 0 before any."""
    seconds = [
        t.duration.total_seconds()
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.duration is not None
    ]
    return sum(seconds) / len(seconds) if seconds else 0.0
