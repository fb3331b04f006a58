"""One trial: suggest its parameters, train them in a process of its own, report every epoch
to Optuna, and leave its log, metrics and plots as artifacts."""

from hpo.trial.objective import Objective, TrialFailed
from hpo.trial.process import TrialOutcome, load_trainer, run_trial_process

__all__ = ["Objective", "TrialFailed", "TrialOutcome", "load_trainer", "run_trial_process"]
