"""Progress a person can read: the per-trial console line's count and time left, and progress
bars only on a terminal."""

from __future__ import annotations

import datetime as dt
import io
import sys

import optuna
from optuna.trial import TrialState, create_trial

from hpo.study.console import print_trial
from hpo.study.progress import duration, study_progress
from storage.tally import tally_of
from trainers import progress


def _trial(state: TrialState, seconds: float | None = None):
    start = dt.datetime(2026, 1, 1)
    end = start + dt.timedelta(seconds=seconds) if seconds is not None else None
    trial = create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={},
        distributions={},
    )
    trial.datetime_start, trial.datetime_complete = start, end
    return trial


def test_time_left_from_the_finished_trials_and_the_ones_running_alongside():
    trials = [
        _trial(TrialState.COMPLETE, 60),
        _trial(TrialState.PRUNED, 20),
        _trial(TrialState.FAIL, 1),
    ]
    alone = study_progress(tally_of(trials), n_trials=6)
    assert (alone.done, alone.remaining, alone.seconds_left) == (
        2,
        4,
        4 * 40,
    )  # failed trials neither count nor time
    assert str(alone) == "[2/6 done, 4 to go, ~3 min left]"
    two_workers = study_progress(tally_of([*trials, _trial(TrialState.RUNNING)]), n_trials=6)
    assert (
        two_workers.seconds_left == 2 * 40
    )  # the other worker's trial runs alongside: two at a time
    assert str(study_progress(tally_of(trials[:2]), n_trials=2)) == "[2/2 done, 0 to go]"
    assert study_progress(tally_of([]), n_trials=3).seconds_left is None


def test_durations_read_in_the_right_unit():
    assert (duration(42), duration(600), duration(5400)) == ("~42 s", "~10 min", "~1.5 h")


def test_the_console_line_shows_the_progress(capsys):
    study = optuna.create_study()
    study.add_trial(_trial(TrialState.COMPLETE, 30))
    print_trial(study, study.trials[0], n_trials=3)
    assert capsys.readouterr().out.rstrip().endswith("[1/3 done, 2 to go, ~60 s left]")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bars_only_on_a_terminal_outside_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress.bars_wanted()
    assert list(progress.progress(range(3), "counting")) == [0, 1, 2]
    assert "counting" in sys.stderr.getvalue()
    for name, value in (("CI", "true"), ("TQDM_DISABLE", "1")):
        monkeypatch.setenv(name, value)
        assert not progress.bars_wanted()
        monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, a pipe
    assert not progress.bars_wanted()


def test_a_time_budget_that_ends_first_bounds_the_time_left():
    trials = [_trial(TrialState.COMPLETE, 600), _trial(TrialState.PRUNED, 120)]
    bounded = study_progress(tally_of(trials), n_trials=40, budget_left_s=25 * 60)
    assert bounded.seconds_left == 25 * 60 and bounded.budget_ends_first
    assert str(bounded) == "[2/40 done, 38 to go, ~25 min left in the time budget]"
    roomy = study_progress(tally_of(trials), n_trials=3, budget_left_s=3600)
    assert roomy.seconds_left == 360 and str(roomy) == "[2/3 done, 1 to go, ~6 min left]"
