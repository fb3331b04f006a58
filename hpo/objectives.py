"""One study, one or several objectives: the trial a single-objective study calls best, and the
one a multi-objective study stands for (Optuna has no `best_trial` there, only the Pareto front
`best_trials`). Everything that used `study.best_trial` or `trial.value` asks here instead."""

from __future__ import annotations

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hpo.errors import HpoError

PARETO_RULE = "among the Pareto-optimal trials, the one with the best first objective (the validation metric); ties: the lower trial number"


def is_multi_objective(study: optuna.Study) -> bool:
    return len(study.directions) > 1


def primary_value(trial: FrozenTrial) -> float | None:
    """The trial's first objective (its only one in a single-objective study)."""
    return trial.values[0] if trial.values else None


def maximizes_primary(study: optuna.Study) -> bool:
    return study.directions[0] == StudyDirection.MAXIMIZE


def chosen_trial(study: optuna.Study, number: int | None = None) -> FrozenTrial:
    """Trial `number` (complete), or the best trial, or in a multi-objective study the Pareto
    trial picked by PARETO_RULE."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise HpoError(
            f"study {study.study_name} has no complete trial; run `hpo study {study.study_name}` first"
        )
    if number is not None:
        found = next((t for t in complete if t.number == number), None)
        if found is None:
            raise HpoError(
                f"study {study.study_name}: trial {number} is not a complete trial; complete: {[t.number for t in complete]}"
            )
        return found
    if not is_multi_objective(study):
        return study.best_trial
    sign = 1 if maximizes_primary(study) else -1
    return min(study.best_trials, key=lambda t: (-sign * t.values[0], t.number))


def values_text(trial: FrozenTrial) -> str:
    return "/".join(f"{v:.4g}" for v in trial.values) if trial.values else "-"
