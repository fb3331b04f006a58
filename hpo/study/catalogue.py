"""The samplers and pruners beyond TPE/random/grid and median/SHA/Hyperband.

GP needs torch and scipy (both already installed for training); CMA-ES needs the `cmaes`
package. Each is imported only when a spec asks for it, so an import error names the spec's
choice and the package to install.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.exceptions import ExperimentalWarning

from hpo.errors import HpoError
from hpo.spec import PrunerSpec, SamplerSpec


def extra_sampler(s: SamplerSpec) -> optuna.samplers.BaseSampler | None:
    """GP, CMA-ES or QMC; None for the types strategy.py builds itself."""
    with warnings.catch_warnings():  # QMC is "experimental" since Optuna 3.0: a spec chose it
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _sampler(s)


def extra_pruner(p: PrunerSpec) -> optuna.pruners.BasePruner | None:
    """Wilcoxon, patient median or threshold; None for the types strategy.py builds itself."""
    with warnings.catch_warnings():  # Wilcoxon and Patient are "experimental" too
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _pruner(p)


def _sampler(s: SamplerSpec) -> optuna.samplers.BaseSampler | None:
    if s.type == "gp":
        _needs("scipy", "gp")
        # The trials' seeds differ, so the objective is noisy: the GP fits a noise term.
        return optuna.samplers.GPSampler(
            seed=s.seed, n_startup_trials=s.n_startup_trials, deterministic_objective=False
        )
    if s.type == "cmaes":
        _needs("cmaes", "cmaes")
        # Categorical parameters (batch size, loss) fall to the random sampler: CMA-ES is continuous.
        return optuna.samplers.CmaEsSampler(
            seed=s.seed, n_startup_trials=s.n_startup_trials, warn_independent_sampling=False
        )
    if s.type == "qmc":
        # Scrambled Sobol, seeded: every worker computes the same sequence and takes the point
        # of its trial's number, so parallel workers never repeat each other.
        return optuna.samplers.QMCSampler(
            qmc_type="sobol", scramble=True, seed=s.seed, warn_independent_sampling=False
        )
    return None


def _pruner(p: PrunerSpec) -> optuna.pruners.BasePruner | None:
    if p.type == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(
            p_threshold=p.p_threshold, n_startup_steps=max(2, p.n_warmup_steps)
        )
    if p.type == "patient":
        median = optuna.pruners.MedianPruner(
            n_startup_trials=p.n_startup_trials, n_warmup_steps=p.n_warmup_steps
        )
        return optuna.pruners.PatientPruner(median, patience=p.patience, min_delta=p.min_delta)
    if p.type == "threshold":
        return optuna.pruners.ThresholdPruner(
            lower=p.lower, upper=p.upper, n_warmup_steps=p.n_warmup_steps
        )
    return None


def _needs(module: str, sampler: str) -> None:
    try:
        __import__(module)
    except ImportError:
        raise HpoError(
            f"sampler {sampler!r} needs the package {module}: pip install {module}"
        ) from None
