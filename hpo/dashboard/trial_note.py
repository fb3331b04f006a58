"""A running trial's note, written as optuna-dashboard stores it, without importing
optuna-dashboard: its import pulls in scikit-learn (through Optuna's importance code), which
costs every worker process ~120 MB for a few system attributes.

The layout is optuna_dashboard._note's (the dashboard reads it; hpo.dashboard.notes rewrites it
after the study with the same functions): a version counter and the body in chunks of
SYSTEM_ATTR_MAX_LENGTH characters, all study system attributes keyed by the trial id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import optuna

SYSTEM_ATTR_MAX_LENGTH = 2045


@dataclass
class TrialNote:
    """What optuna_dashboard.save_note(trial, body) does, for a trial this worker created.

    The dashboard's own save reads every study system attribute to find the note's version and
    chunk count, and those attributes hold every trial's note: a read that grows with the study,
    once per trial. The worker that created the trial knows both, so it never reads. A note typed
    into the dashboard while the trial runs is replaced when the trial ends."""

    trial: optuna.Trial
    version: int = 0
    chunks: int = 0

    def save(self, body: str) -> None:
        storage, study_id = self.trial.storage, self.trial.study._study_id
        prefix = f"dashboard:{self.trial._trial_id}:note_str:"
        self.version += 1
        storage.set_study_system_attr(
            study_id, f"dashboard:{self.trial._trial_id}:note_ver", self.version
        )
        chunks = [
            body[i * SYSTEM_ATTR_MAX_LENGTH : (i + 1) * SYSTEM_ATTR_MAX_LENGTH]
            for i in range(math.ceil(len(body) / SYSTEM_ATTR_MAX_LENGTH))
        ]
        for i, chunk in enumerate(chunks):
            storage.set_study_system_attr(study_id, f"{prefix}{i}", chunk)
        for i in range(len(chunks), self.chunks):  # a shorter note than before: blank the rest
            storage.set_study_system_attr(study_id, f"{prefix}{i}", "")
        self.chunks = max(self.chunks, len(chunks))
