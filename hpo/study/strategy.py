"""The spec's sampler and pruner. The storage keeps neither: a worker that loads a study
without them silently gets TPE and MedianPruner, so every worker builds both here."""

from __future__ import annotations

import optuna

from hpo.spec import StudySpec
from hpo.study.catalogue import extra_pruner, extra_sampler


def build_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    s = spec.sampler
    if (extra := extra_sampler(s)) is not None:
        return extra
    if s.type in ("grid", "random"):
        # A grid's points come from hpo.study.turns' queue, as trials with fixed parameters,
        # never from the sampler; GridSampler would only rescan every trial after each (and
        # fails on a 1-point grid).
        return optuna.samplers.RandomSampler(seed=s.seed)
    # Multivariate TPE models the parameters jointly; the constant liar gives running trials a
    # pessimistic value, so parallel workers do not pile onto one point.
    return optuna.samplers.TPESampler(
        seed=s.seed, n_startup_trials=s.n_startup_trials, multivariate=True, constant_liar=True
    )


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    p = spec.pruner
    if (extra := extra_pruner(p)) is not None:
        return extra
    if (
        p.type == "none" or spec.multi_objective
    ):  # the spec refuses a pruner with several objectives
        return optuna.pruners.NopPruner()
    if p.type == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
    if p.type == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=p.min_resource, reduction_factor=p.reduction_factor
        )
    return optuna.pruners.HyperbandPruner(
        min_resource=p.min_resource,
        max_resource=spec.max_epochs,
        reduction_factor=p.reduction_factor,
    )
