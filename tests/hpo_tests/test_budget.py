"""The study-wide time budget: the clock is stored in the study, workers stop starting trials
that would end after it, the running ones finish, and each says so in one line."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import optuna
from optuna.trial import TrialState, create_trial

from hpo import stored
from hpo.cli.parser import build_parser
from hpo.cli.search import load_args_spec
from hpo.spec import load_spec
from hpo.study.budget import check_budget, expected_duration_s
from hpo.study.workers import wait_workers
from testing.specs import sleep_spec
from testing.workers import start_study_workers as create_and_start


def _finished(study: optuna.Study, seconds: float) -> None:
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    trial = create_trial(
        state=TrialState.COMPLETE, value=0.5, params={"x": 0.5}, distributions=dist
    )
    trial.datetime_start = trial.datetime_complete - timedelta(seconds=seconds)
    study.add_trial(trial)


def test_the_clock_starts_once_and_a_trial_is_expected_to_take_the_mean(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/b.db")
    first = check_budget(study, 1.0, [], now=1000.0)
    assert first.fits and first.expected_trial_s == 0.0  # nothing finished yet: start freely
    _finished(study, 20.0)
    _finished(study, 40.0)
    trials = study.get_trials()
    assert expected_duration_s(trials) == 30.0
    assert check_budget(
        study, 1.0, trials, now=1030.0
    ).fits  # 30 s used + 30 s expected = the budget
    late = check_budget(study, 1.0, trials, now=1031.0)
    assert not late.fits and study.user_attrs[stored.BUDGET_STARTED_AT] == 1000.0
    assert "time budget 1.0 min reached" in late.message("s") and "no new trials" in late.message(
        "s"
    )


def test_workers_stop_at_the_budget_and_no_trial_is_left_running(
    tmp_path: Path, monkeypatch, capfd
) -> None:
    monkeypatch.setenv("SLEEP_EPOCH_S", "0.5")
    path = sleep_spec(tmp_path, n_trials=200, budget={"minutes": 0.3}, training={"epochs": 2})
    study, procs = create_and_start(path, f"sqlite:///{tmp_path}/optuna.db", n_workers=2)
    began = time.time()
    assert wait_workers(procs) == 0
    took = time.time() - began

    trials = study.get_trials()
    assert {t.state for t in trials} == {TrialState.COMPLETE}  # every started trial finished
    assert (
        4 <= len(trials) < 60
    )  # ~1 s trials (the first ones slower), 2 workers, 18 s: far from 200
    started = study.user_attrs[stored.BUDGET_STARTED_AT]
    ends = [t.datetime_complete.timestamp() - started for t in trials]
    longest = max(t.duration.total_seconds() for t in trials)
    assert max(ends) <= 18.0 + longest  # the last ones started while the mean still fitted
    assert took < 40
    out = capfd.readouterr().out
    assert out.count("time budget 0.3 min reached") == 2  # one line per worker


def test_budget_flag_overrides_the_spec(tmp_path: Path) -> None:
    path = sleep_spec(tmp_path)
    args = build_parser().parse_args(["study", str(path), "--budget-min", "30"])
    spec, _, _ = load_args_spec(args)
    assert spec.budget.minutes == 30 and load_spec(str(path)).budget is None
