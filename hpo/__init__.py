"""The study service. Its packages follow the flow of a study:

spec, search_space  what the user declares, and the one place parameters are suggested
study/              preflight, create or resume, the shared run loop, workers, console lines
trial/              one trial: objective, its training process, its artifacts and plots
report/             tables, plots and files read back from storage alone
dashboard/          optuna-dashboard with notes and attached files
best/               retrain the best trial, score trials on test, predict
stored              every name the service stores

Imports `trainers` lazily where it needs torch, so `hpo report` works without it.
"""

from hpo.errors import HpoError, SpecError

__all__ = ["HpoError", "SpecError"]
