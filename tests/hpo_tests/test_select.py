"""`hpo select`: the top trials re-run with more seeds (real trial processes), the lucky one
loses on its mean, a clearly worse one is stopped by the Wilcoxon pruner, retrain follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpo import stored
from hpo.best.retrain import best_trial
from hpo.best.select import select, selection_lines
from hpo.spec import load_spec
from hpo.study import open_study, run_study
from testing.sleep_trainer import score
from testing.specs import sleep_spec


def test_the_lucky_trial_loses_on_its_mean_and_a_bad_one_is_stopped(tmp_path: Path) -> None:
    spec = load_spec(str(sleep_spec(tmp_path, n_trials=3, trainer="tests.hpo_tests.instant_trainers:lucky_seed_1",
                                    training={"epochs": 1}, selection={"top_k": 3, "seeds": 5})))  # fmt: skip
    study = open_study(spec, f"sqlite:///{tmp_path}/optuna.db")
    for lr in (1e-3, 3e-3, 1e-5):  # trial 1 (seed 1) scores 0.64 in the search, 0.34 otherwise
        study.enqueue_trial({"learning_rate": lr})
    run_study(spec, study, tmp_path)
    assert study.best_trial.number == 1

    candidates = select(study, spec, tmp_path)
    assert [c.trial for c in candidates] == [0, 1, 2]
    best, lucky, bad = candidates
    assert best.mean == pytest.approx(0.5) and best.standard_error == pytest.approx(0.0)
    true = score(3e-3, 1)
    assert lucky.scores == pytest.approx(
        [true + 0.3, true, true, true, true]
    ) and lucky.mean == pytest.approx(true + 0.06)
    assert lucky.standard_error > 0
    # Worse than the best on every seed: one-sided p = 2^-4 < 0.1 after its 4th seed.
    assert bad.pruned and len(bad.scores) == 4 and not best.pruned and not lucky.pruned

    attrs = study.user_attrs
    assert attrs[stored.SELECTED_TRIAL] == 0 and set(stored.selections_of(attrs)) == {0, 1, 2}
    assert stored.selections_of(attrs)[1].standard_error == pytest.approx(lucky.standard_error)
    assert best_trial(study).number == 0  # hpo retrain retrains the selected trial
    assert "stopped: clearly behind" in "\n".join(selection_lines(candidates, "tuned_macro_f1"))


def test_the_report_tabulates_the_candidates(tmp_path: Path) -> None:
    import optuna

    from hpo.report.tables import selection_table

    study = optuna.create_study(direction="maximize")
    assert selection_table(study) is None
    for n, mean in ((3, 0.5), (7, 0.6)):
        study.set_user_attr(stored.selection_key(n), {"scores": [mean] * 3, "mean": mean, "standard_error": 0.01,
                                                      "search_value": mean, "pruned": False})  # fmt: skip
    table = selection_table(study)
    assert list(table["trial"]) == [7, 3] and list(table["standard error"]) == [0.01, 0.01]


def test_hpo_study_selects_after_its_search_once(tmp_path: Path, capsys) -> None:
    from hpo.cli import main

    path = sleep_spec(tmp_path, n_trials=3, trainer="tests.hpo_tests.instant_trainers:lucky_seed_1",
                      training={"epochs": 1}, selection={"top_k": 2, "seeds": 3})  # fmt: skip
    url = f"sqlite:///{tmp_path}/optuna.db"
    args = ["study", str(path), "--storage", url, "--data-dir", str(tmp_path)]
    assert main([*args, "--no-select"]) == 0
    study = open_study(load_spec(str(path)), url)
    assert stored.SELECTED_TRIAL not in study.user_attrs
    assert main(args) == 0  # n_trials already finished: no new trial, the selection runs
    out = capsys.readouterr().out
    assert "selection: re-running the top 2 trial(s) with 2 more seed(s) each" in out
    assert out.count("  selection: trial ") == 4 and "seed 3 of 3: " in out  # one line per re-run
    attrs = open_study(load_spec(str(path)), url).user_attrs
    assert (
        len(stored.selections_of(attrs)) == 2
        and f"selected trial {attrs[stored.SELECTED_TRIAL]}" in out
    )
    assert main(args) == 0
    assert "selection: already done for the top 2 trial(s)" in capsys.readouterr().out
