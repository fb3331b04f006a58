"""A running trial's note, written as optuna-dashboard stores it, without importing
optuna-dashboard: its import pulls in scikit-learn (through Optuna's importance code), which
costs every worker process ~120 MB for a few system attributes.

The layout is optuna_dashboard._note's (the dashboard reads it; hpo.dashboard.notes rewrites it
after the study with the same functions): a version counter and the body in chunks of
SYSTEM_ATTR_MAX_LENGTH characters, all study system attributes keyed by the trial id.
"""

from __future__ import annotations

import math

import optuna

SYSTEM_ATTR_MAX_LENGTH = 2045


def save_trial_note(trial: optuna.Trial, body: str) -> None:
    """What optuna_dashboard.save_note(trial, body) does."""
    storage, study_id, trial_id = trial.storage, trial.study._study_id, trial._trial_id
    prefix = f"dashboard:{trial_id}:note_str:"
    version_key = f"dashboard:{trial_id}:note_ver"
    attrs = storage.get_study_system_attrs(study_id)  # read once: it holds every trial's note
    older = sum(1 for k in attrs if k.startswith(prefix))
    storage.set_study_system_attr(study_id, version_key, attrs.get(version_key, 0) + 1)
    chunks = [
        body[i * SYSTEM_ATTR_MAX_LENGTH : (i + 1) * SYSTEM_ATTR_MAX_LENGTH]
        for i in range(math.ceil(len(body) / SYSTEM_ATTR_MAX_LENGTH))
    ]
    for i, chunk in enumerate(chunks):
        storage.set_study_system_attr(study_id, f"{prefix}{i}", chunk)
    for i in range(len(chunks), older):  # a shorter note than before: blank the rest
        storage.set_study_system_attr(study_id, f"{prefix}{i}", "")
