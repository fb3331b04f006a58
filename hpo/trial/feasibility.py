"""A trial that runs out of memory on its own is infeasible, not unlucky.

Optuna's samplers read constraints (`trial.set_constraint`; `constraints_func` is deprecated
since Optuna 5) only from COMPLETE and PRUNED trials: a FAIL trial is invisible to them, so
TPE would propose the same batch size again. Such a trial therefore ends PRUNED with the
constraint violated (TPE ranks infeasible trials below every feasible one) and keeps its
`fail_reason`; the study does not count it towards n_trials (hpo.study.turns), so a study
still ends with n_trials trained trials. GP and CMA-ES model only COMPLETE trials and so see
an OOM trial as they would a failed one.

A trial packed beside others on a GPU that runs out of memory is not the configuration's
fault: it stays FAIL and is queued again to run alone (hpo.study.placement); only when it runs
out of memory alone is it infeasible.
"""

from __future__ import annotations

import optuna
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial

from hpo import stored


def is_oom(reason: str | None) -> bool:
    return bool(reason) and reason.startswith("out of memory")


def is_own_oom(trial: optuna.Trial, reason: str | None) -> bool:
    """Out of memory with the device to itself (CPU, a GPU per trial, or a re-run alone)."""
    from hpo.study.placement import Gpu  # here: hpo.study imports this module

    return is_oom(reason) and (
        Gpu.from_env() is None or bool(trial.user_attrs.get(stored.RUN_ALONE))
    )


def mark_feasible(trial: optuna.Trial) -> None:
    """Every finished trial carries the constraint: GPSampler needs the same ones on all trials.
    Written where `trial.set_constraint` writes it, without the read of every system attribute
    it makes first to refuse a second value: one worker sets it, once, as its trial ends."""
    trial.storage.set_trial_system_attr(
        trial._trial_id, f"{_CONSTRAINTS_KEY}:{stored.OOM_CONSTRAINT}", 0.0
    )


def prune_as_infeasible(trial: optuna.Trial, reason: str) -> optuna.TrialPruned:
    """Record the violation and the reason; the caller raises the returned exception."""
    trial.set_constraint(stored.OOM_CONSTRAINT, 1.0)
    trial.set_user_attr(stored.FAIL_REASON, reason)
    return optuna.TrialPruned(f"infeasible: {reason.splitlines()[0]}")


def is_infeasible(trial: FrozenTrial) -> bool:
    return any(v > 0 for v in trial.constraints.values())


def counts_as_finished(trial: FrozenTrial) -> bool:
    """COMPLETE or PRUNED after training: an infeasible trial trained nothing worth counting."""
    return (
        trial.state.is_finished()
        and trial.state != optuna.trial.TrialState.FAIL
        and not is_infeasible(trial)
    )
