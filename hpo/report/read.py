"""Reading a study back from storage: the spec it ran with, each trial's epochs and settings.

Every number a report shows comes from the trials' parameters and user attributes (names in
hpo.stored), so the report of any study, finished or still running, can be rebuilt at any time.
Nothing here imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from pydantic import ValidationError

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec, first_error
from trainers.config import Hyperparams


def open_existing_study(name: str, storage_url: str) -> tuple[optuna.Study, StudySpec]:
    """Load a study and the resolved spec it stored when it started (never a spec file: the
    file may have changed since, and a study name is not a path)."""
    from storage import open_storage, redact, require_existing_database

    require_existing_database(storage_url)
    storage = open_storage(storage_url, heartbeat_interval=None)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise HpoError(
            f"no study {name!r} in {redact(storage_url)}; studies there: {', '.join(names) or 'none'}"
        ) from None
    return study, study_spec(study)


def study_spec(study: optuna.Study) -> StudySpec:
    """The spec stored in the study (variant applied), checked to be this study's."""
    name = study.study_name
    recorded = study.user_attrs.get(stored.SPEC_RESOLVED)
    if not isinstance(recorded, dict):
        raise HpoError(
            f"study {name!r} stores no spec (it was not started by `hpo study`); results commands need the spec a study ran with"
        )
    if (
        "n_trials" not in recorded
    ):  # stored before the spec kept it: what the study has is what it asked for
        finished = study.get_trials(
            deepcopy=False,
            states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED),
        )
        recorded = {**recorded, "n_trials": max(1, len(finished))}
    try:
        spec = StudySpec.model_validate(recorded)
    except ValidationError as e:
        raise HpoError(
            f"study {name!r}: its stored spec no longer validates ({first_error(e)}); it was written by another version"
        ) from None
    if spec.name != name:
        raise HpoError(
            f"study {name!r} stores the spec of study {spec.name!r}; it was copied or renamed, so its results cannot be trusted to be its own"
        )
    return spec


def best_epoch_metrics(trial: FrozenTrial, metric: str, maximize: bool) -> dict:
    """The metrics of the epoch the trial's value comes from, else its best epoch."""
    epochs = stored.epoch_history(trial.user_attrs)
    wanted = trial.user_attrs.get(stored.BEST_EPOCH)
    for m in epochs:
        if m.get("epoch") == wanted:
            return m
    scored = [m for m in epochs if finite(m.get(metric))]
    if not scored:
        return epochs[-1] if epochs else {}
    return (max if maximize else min)(scored, key=lambda m: m[metric])


def hyperparam(trial: FrozenTrial, spec: StudySpec, name: str) -> Any:
    """A setting's value in this trial: searched, fixed by the spec, or the trainer's default."""
    if name in trial.params:
        return trial.params[name]
    if name in spec.training:
        return spec.training[name]
    return Hyperparams.model_fields[name].default


def loss_type(trial: FrozenTrial, spec: StudySpec) -> str:
    return hyperparam(trial, spec, "loss") or (
        "bce" if spec.task == "multi_label" else "cross_entropy"
    )


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any) -> float:
    """A finite number as float, anything else (None, NaN, text) as NaN: a table's missing cell."""
    return float(x) if finite(x) else math.nan


def changed_data(study: optuna.Study, spec: StudySpec, data_dir: Path) -> list[str]:
    """The train and val files under `data_dir` whose content is not what the study's trials
    used (by sha256); empty for a study that recorded no fingerprint."""
    from trainers.manifest import sha256_of

    recorded = study.user_attrs.get(stored.DATA_FINGERPRINT) or {}
    data = spec.data_config(data_dir)
    changed = []
    for split, path in (("train", data.train_path), ("val", data.val_path)):
        old = recorded.get(split)
        if old is None:
            continue
        if not path.is_file():
            changed.append(f"{split}: {path} is missing (the study used {old.get('path')})")
        elif sha256_of(path) != old.get("sha256"):
            changed.append(f"{split}: {path} differs from {old.get('path')}")
    return changed


def require_same_data(study: optuna.Study, spec: StudySpec, data_dir: Path) -> None:
    """Retraining or scoring on other data would not rebuild the models the trials scored."""
    changed = changed_data(study, spec, data_dir)
    if changed:
        raise HpoError(
            f"study {study.study_name!r} ran on other data ({'; '.join(changed)}); point --data-dir at the study's data"
        )
