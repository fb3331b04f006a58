"""What a study prints: one line per finished trial, one for the best trial at the end."""

from __future__ import annotations

import os

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import stored

_TAG = f"{os.environ['HPO_WORKER']} " if os.environ.get("HPO_WORKER") else ""  # `hpo workers` labels its lines


def print_trial(study: optuna.Study, trial: FrozenTrial) -> None:
    seconds = (trial.duration.total_seconds() if trial.duration else float("nan"))
    value = "-" if trial.value is None else f"{trial.value:.4f}"
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        value = f"{trial.intermediate_values[trial.last_step]:.4f}@epoch{trial.last_step}"
    params = " ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
    reason = f"  ({first_line(trial.user_attrs.get(stored.FAIL_REASON))})" if trial.state == TrialState.FAIL or stored.FAIL_REASON in trial.user_attrs else ""
    print(f"{_TAG}trial {trial.number:3d}  {trial.state.name:8s} {value:>16s}  {seconds:6.1f}s  {params}{reason}", flush=True)


def print_best(study: optuna.Study) -> None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        print(f"study {study.study_name}: no complete trial yet")
        return
    best = study.best_trial
    params = " ".join(f"{k}={fmt(v)}" for k, v in best.params.items())
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    print(
        f"best trial {best.number}: {study.user_attrs.get(stored.OBJECTIVE, 'objective')} = {best.value:.4f} "
        f"(epoch {best.user_attrs.get(stored.BEST_EPOCH)})  {params}   [{len(done)} complete, {pruned} pruned]",
        flush=True,
    )


def first_line(text: str | None) -> str:
    return (text or "unknown reason").splitlines()[0]


def fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)
