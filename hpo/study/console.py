"""What a study prints: one line per finished trial, one for the best trial at the end."""

from __future__ import annotations

import logging
import os
import time

import optuna
from optuna.trial import FrozenTrial, TrialState

from hpo import stored
from hpo.objectives import PARETO_RULE, is_multi_objective, values_text
from hpo.study.progress import study_progress
from storage.tally import study_tally

_TAG = (
    f"{os.environ['HPO_WORKER']} " if os.environ.get("HPO_WORKER") else ""
)  # `hpo workers` labels its lines


def print_trial(
    study: optuna.Study,
    trial: FrozenTrial,
    n_trials: int | None = None,
    budget_min: float | None = None,
) -> None:
    """One line per finished trial; with `n_trials`, how far the study is and the time left
    (at most what is left of a `budget_min` time budget)."""
    seconds = trial.duration.total_seconds() if trial.duration else float("nan")
    value = (
        values_text(trial)
        if is_multi_objective(study)
        else ("-" if trial.value is None else f"{trial.value:.4f}")
    )
    if trial.state == TrialState.PRUNED and trial.last_step is not None:
        value = f"{trial.intermediate_values[trial.last_step]:.4f}@epoch{trial.last_step}"
    params = " ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
    reason = (
        f"  ({first_line(trial.user_attrs.get(stored.FAIL_REASON))})"
        if trial.state == TrialState.FAIL or stored.FAIL_REASON in trial.user_attrs
        else ""
    )
    progress = (
        f"  {study_progress(study_tally(study._storage, study._study_id), n_trials, _budget_left_s(study, budget_min))}"
        if n_trials
        else ""
    )
    print(
        f"{_TAG}trial {trial.number:3d}  {trial.state.name:8s} {value:>16s}  {seconds:6.1f}s  {params}{reason}{progress}",
        flush=True,
    )


def _budget_left_s(study: optuna.Study, budget_min: float | None) -> float | None:
    started = study.user_attrs.get(stored.BUDGET_STARTED_AT) if budget_min else None
    return None if started is None else budget_min * 60 - (time.time() - float(started))


def print_best(study: optuna.Study) -> None:
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        print(f"study {study.study_name}: no complete trial yet")
        return
    pruned = len(study.get_trials(deepcopy=False, states=(TrialState.PRUNED,)))
    if is_multi_objective(study):
        print(f"Pareto front of {study.user_attrs.get(stored.OBJECTIVE, 'the objectives')}: {len(study.best_trials)} trial(s)"
              f"   [{len(done)} complete, {pruned} pruned]", flush=True)  # fmt: skip
        for t in sorted(study.best_trials, key=lambda t: t.number):
            print(
                f"  trial {t.number}: {values_text(t)}  {' '.join(f'{k}={fmt(v)}' for k, v in t.params.items())}",
                flush=True,
            )
        print(f"  hpo retrain picks {PARETO_RULE} (or --trial N)", flush=True)
        return
    best = study.best_trial
    params = " ".join(f"{k}={fmt(v)}" for k, v in best.params.items())
    print(
        f"best trial {best.number}: {study.user_attrs.get(stored.OBJECTIVE, 'objective')} = {best.value:.4f} "
        f"(epoch {best.user_attrs.get(stored.BEST_EPOCH)})  {params}   [{len(done)} complete, {pruned} pruned]",
        flush=True,
    )


def first_line(text: str | None) -> str:
    return (text or "unknown reason").splitlines()[0]


def fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class _NoTrialFailureLog(logging.Filter):
    """Optuna logs every failed trial ("Trial N failed with parameters … because of …" with the
    whole traceback, then "Trial N failed with value None"), Ctrl-C included. The study prints
    its own line per trial (`print_trial`) and the trial's train.log keeps the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message.startswith("Trial ") and " failed with " in message)


_FILTER = _NoTrialFailureLog()


def quiet_trial_failures() -> None:
    """Drop those records where Optuna logs them (a filter on the emitting logger; filters on the
    "optuna" parent would not see records that propagate up to its handler)."""
    logger = logging.getLogger("optuna.study._optimize")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
