"""Samplers from the spec. The storage does not keep the sampler: every worker builds it here."""

from __future__ import annotations

import optuna

from hpo.spec import StudySpec


def build_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    if s.type in ("grid", "random"):
        # A grid's points come from hpo.slots' queue, as trials with fixed parameters, never from
        # the sampler; GridSampler would only rescan every trial after each (and fails on a
        # 1-point grid).
        return optuna.samplers.RandomSampler(seed=s.seed)
    # Optuna 5's TPE is multivariate with constant_liar on: parallel workers don't pile on one point.
    return optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=s.n_startup_trials)
