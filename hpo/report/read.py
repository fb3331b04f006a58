"""Reading a study back from storage: the spec it ran with, each trial's epochs and settings.

Every number a report shows comes from the trials' parameters and user attributes (names in
hpo.stored), so the report of any study, finished or still running, can be rebuilt at any time.
Nothing here imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec, load_spec
from trainers.config import Hyperparams


def open_existing_study(name: str, storage_url: str) -> tuple[optuna.Study, StudySpec]:
    """Load a study and the spec it ran with (saved in the study, else studies/<name>.yaml)."""
    from storage import open_storage, redact

    storage = open_storage(storage_url, heartbeat_interval=None)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = sorted(optuna.get_all_study_names(storage))
        raise HpoError(f"no study {name!r} in {redact(storage_url)}; studies there: {', '.join(names) or 'none'}") from None
    return study, study_spec(study)


def study_spec(study: optuna.Study) -> StudySpec:
    text = study.user_attrs.get(stored.SPEC_YAML)
    if text is None:
        return load_spec(study.study_name)
    return StudySpec.model_validate(yaml.safe_load(text))


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
    return hyperparam(trial, spec, "loss") or ("bce" if spec.task == "multi_label" else "cross_entropy")


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def num(x: Any) -> float:
    """A finite number as float, anything else (None, NaN, text) as NaN: a table's missing cell."""
    return float(x) if finite(x) else math.nan
