"""The trial note a worker writes without importing optuna-dashboard reads back through it."""

from __future__ import annotations

import subprocess
import sys

import optuna
from optuna_dashboard import get_note, save_note

from hpo.dashboard.trial_note import SYSTEM_ATTR_MAX_LENGTH, TrialNote
from testing.data import REPO


def test_a_note_reads_back_through_optuna_dashboard_even_when_it_shrinks() -> None:
    study = optuna.create_study()
    trial, theirs = study.ask(), study.ask()
    long = "x" * (2 * SYSTEM_ATTR_MAX_LENGTH + 7)
    note = TrialNote(trial)
    for body in (long, "**short** now"):
        note.save(body)
        save_note(theirs, body)
        assert get_note(trial) == get_note(theirs) == body
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert (
        attrs[f"dashboard:{trial._trial_id}:note_ver"]
        == attrs[f"dashboard:{theirs._trial_id}:note_ver"]
        == 2
    )


def test_a_sleep_trainer_worker_imports_neither_scikit_learn_nor_torch() -> None:
    """128 workers on one machine: each worker and its forkserver stay small (benchmarks)."""
    code = (
        "import sys, hpo.cli, hpo.study.loop, hpo.trial.objective, storage.proxy_client\n"
        "import hpo.trial.process, testing.sleep_trainer\n"
        "print(','.join(m for m in ('torch', 'transformers', 'sklearn', 'pandas', 'optuna_dashboard') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
