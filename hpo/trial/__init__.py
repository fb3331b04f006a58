"""One trial: suggest its parameters, train them in a process of its own, report every epoch
to Optuna, and leave its log, metrics and plots as artifacts."""

from importlib import import_module

_EXPORTS = {
    "Objective": "objective",
    "TrialFailed": "objective",
    "TrialOutcome": "process",
    "load_trainer": "process",
    "run_trial_process": "process",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Imported on first use: the trial processes' forkserver preloads hpo.trial.process, and
    must not pay for the objective's imports (the study, the dashboard's notes) on the way."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"hpo.trial.{_EXPORTS[name]}"), name)
