"""Files made after the study (the report, the retrained model's metrics), shown with its best
trial in the dashboard."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import optuna

from hpo import stored
from hpo.dashboard.notes import set_note_section
from hpo.objectives import chosen_trial
from hpo.trial.artifacts import trial_dir, upload
from storage import artifact_store

ATTACHED = "**Attached after the study** (study artifacts):"


def attach_to_best_trial(
    study: optuna.Study, paths: Iterable[Path], artifact_dir: Path, trial_number: int | None = None
) -> list[str]:
    """Show files made after the study (report, retrained model's metrics) with its best trial.

    Optuna refuses changes to a finished trial, so they become study artifacts named
    "trial-<number>-<file>", linked from the best trial's note. Attaching a file of the same name
    again replaces its content under the same link. Returns the artifact ids (none without a
    complete trial).
    """
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    best = chosen_trial(
        study, trial_number
    )  # multi-objective: the Pareto trial `hpo retrain` picks
    folder = trial_dir(artifact_dir, study.study_name, best.number)
    store = artifact_store(artifact_dir)
    ids = []
    for path in map(Path, paths):
        copy = folder / stored.attached_name(best.number, path.name)
        if path.resolve() != copy.resolve():
            shutil.copyfile(path, copy)
        existing = _study_artifacts(study)
        if copy.name in existing:
            with copy.open("rb") as f:
                store.write(existing[copy.name], f)
            ids.append(existing[copy.name])
        else:
            ids.extend(upload(study, [copy], artifact_dir))
    attached = sorted(
        (name, i)
        for name, i in _study_artifacts(study).items()
        if name.startswith(stored.attached_name(best.number, ""))
    )
    links = "\n".join(f"- [{name}](/artifacts/{study._study_id}/{i})" for name, i in attached)
    set_note_section(study, best._trial_id, ATTACHED, links)
    return ids


def _study_artifacts(study: optuna.Study) -> dict[str, str]:
    """Filename → artifact id. Unlike optuna.artifacts.get_all_artifact_meta, skips the null
    entries the dashboard leaves when someone deletes an artifact there."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    metas = [json.loads(v) for k, v in attrs.items() if k.startswith(stored.ARTIFACT_META_PREFIX)]
    return {m["filename"]: m["artifact_id"] for m in metas if m}
