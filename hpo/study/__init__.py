"""A study from spec to its last trial: preflight, create or resume it, take turns at it with
other workers until it has exactly n_trials finished trials, print what happened."""

from hpo.study.console import print_best, print_trial
from hpo.study.loop import run_study
from hpo.study.opening import (
    check_same_data,
    check_same_spec,
    describe_study,
    n_finished,
    open_study,
)
from hpo.study.preflight import DataFacts, preflight

__all__ = [
    "DataFacts",
    "check_same_data",
    "check_same_spec",
    "describe_study",
    "n_finished",
    "open_study",
    "preflight",
    "print_best",
    "print_trial",
    "run_study",
]
