"""The one place that calls `trial.suggest_*`.

Retraining replays the best parameters through this same function with Optuna's FixedTrial,
so a study and its retrained model can never disagree on what a parameter means.
"""

from __future__ import annotations

from typing import Any

import optuna

from hpo.spec import CategoricalParam, FloatParam, Param, StudySpec


def suggest(trial: optuna.trial.BaseTrial, space: dict[str, Param]) -> dict[str, Any]:
    """The trial's parameters, in spec order; one whose `when` does not hold is not suggested,
    so it keeps the trainer's default and the study records no value for it."""
    chosen: dict[str, Any] = {}
    for name, p in space.items():
        if p.applies(chosen):
            chosen[name] = _suggest_one(trial, name, p)
    return chosen


def _suggest_one(trial: optuna.trial.BaseTrial, name: str, p: Param) -> Any:
    if isinstance(p, CategoricalParam):
        return trial.suggest_categorical(name, p.choices)
    if isinstance(p, FloatParam):
        return trial.suggest_float(name, p.low, p.high, log=p.log, step=p.step)
    return trial.suggest_int(name, p.low, p.high, log=p.log, step=p.step)


def replay(spec: StudySpec, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters a finished trial stands for, validated against the spec's space."""
    return suggest(optuna.trial.FixedTrial(params), spec.search_space)


def grid(spec: StudySpec) -> dict[str, list[Any]]:
    return {name: list(p.choices) for name, p in spec.search_space.items()}  # type: ignore[union-attr]
