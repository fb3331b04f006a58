"""Pruners from the spec. Like the sampler, the storage does not keep it: a worker that loads a
study without one silently gets MedianPruner, so every worker builds it here."""

from __future__ import annotations

import optuna

from hpo.spec import StudySpec


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    epochs = spec.training.get("epochs", 3)
    if p.type == "none":
        return optuna.pruners.NopPruner()
    if p.type == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps)
    if p.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=p.min_resource, reduction_factor=p.reduction_factor)
    return optuna.pruners.HyperbandPruner(min_resource=p.min_resource, max_resource=epochs, reduction_factor=p.reduction_factor)
