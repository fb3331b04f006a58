"""The one place that calls `trial.suggest_*`.

Retraining replays the best parameters through this same function with Optuna's FixedTrial,
so a study and its retrained model can never disagree on what a parameter means.
"""

from __future__ import annotations

from typing import Any

import optuna

from hpo.spec import CategoricalParam, FloatParam, Param, StudySpec


def suggest(trial: optuna.trial.BaseTrial, space: dict[str, Param]) -> dict[str, Any]:
    return {name: _suggest_one(trial, name, p) for name, p in space.items()}


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
