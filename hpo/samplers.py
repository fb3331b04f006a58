"""Samplers from the spec. The storage does not keep the sampler: every worker builds it here."""

from __future__ import annotations

import optuna

from hpo.search_space import grid
from hpo.spec import StudySpec


def build_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    if s.type == "grid":
        return optuna.samplers.GridSampler(grid(spec), seed=s.seed)
    if s.type == "random":
        return optuna.samplers.RandomSampler(seed=s.seed)
    # Optuna 5's TPE is multivariate with constant_liar on: parallel workers don't pile on one point.
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials)
