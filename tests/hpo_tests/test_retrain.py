"""Retraining the best trial: a directory that reloads and predicts what was scored, thresholds
from validation only, the study report picking up the test figures, and `hpo predict`."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from hpo.errors import HpoError
from hpo.best import predict, retrain_best, score_trials
from hpo.report import open_existing_study, report_study, trials_table
from hpo.report.tables import TEST_COLUMN
from hpo.spec import StudySpec
from tests.hpo_tests.tiny_study import GRID, NAME, tiny_study
from tests.support import data_dir
from trainers.checkpoint import load_best
from trainers.data import load_split
from trainers.evaluate import multi_label_scores, predict_probabilities
from trainers.thresholds import best_f1_thresholds


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    shared = tiny_study(tmp_path_factory)
    root = tmp_path_factory.mktemp("retrain")
    url = shared.copy_to(root)
    study, spec = open_existing_study(NAME, url)
    best_dir = root / "runs" / NAME / "best"
    metrics = retrain_best(study, spec, shared.data_dir, best_dir, n_resamples=50).model_dump(mode="json")
    return study, spec, shared, root, url, best_dir, metrics


def test_best_directory_holds_model_labels_thresholds_and_metrics(retrained):
    study, _, _, _, _, best_dir, metrics = retrained
    names = {p.name for p in best_dir.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "labels.json", "thresholds.json", "metrics.json", "report.html", "report.md"} <= names
    assert json.loads((best_dir / "metrics.json").read_text()) == metrics
    assert metrics["trial"] == study.best_trial.number and metrics["epochs"] == study.best_trial.user_attrs["best_epoch"]
    # Same configuration, seed and schedule, stopped at the best epoch: the model the trial scored.
    assert metrics["objective"]["retrained_val_value"] == pytest.approx(study.best_trial.value, abs=1e-6)
    for key in ("default.macro_f1", "tuned.macro_f1", "macro_roc_auc"):
        low, high = metrics["test"]["intervals"][key]
        assert 0 <= low <= high <= 1
    assert metrics["model_size_mb"] > 0 and metrics["texts_per_s"] > 0
    assert "Thresholds were chosen on validation only" in (best_dir / "report.md").read_text()
    assert pd.read_csv(best_dir / "test_before_after.csv").set_index("metric").loc["macro_f1", "tuned thresholds"] == pytest.approx(metrics["test"]["tuned"]["macro_f1"])


def test_reloaded_model_reproduces_the_scores_and_thresholds_come_from_val(retrained):
    _, spec, shared, _, _, best_dir, metrics = retrained
    best = load_best(best_dir)
    data = spec.data_config(shared.data_dir)
    test = load_split(data.test_path, data, spec.task)
    probs, _ = predict_probabilities(best, test.texts)
    for tag, thresholds in (("default", 0.5), ("tuned", best.thresholds)):
        scores = multi_label_scores(test.labels, probs, best.labels.names, thresholds)
        assert scores["macro_f1"] == pytest.approx(metrics["test"][tag]["macro_f1"])
        assert scores["per_label"]["healthy"]["confusion"] == metrics["test"][tag]["per_label"]["healthy"]["confusion"]
    val = load_split(data.val_path, data, spec.task)
    val_probs, _ = predict_probabilities(best, val.texts)
    np.testing.assert_allclose(best.thresholds, best_f1_thresholds(val.labels, val_probs), atol=1e-5)


def test_a_different_test_file_changes_no_threshold(retrained, tmp_path):
    study, spec, shared, _, _, best_dir, metrics = retrained
    other = tmp_path / "data"
    (other / "ucc").mkdir(parents=True)
    for split in ("train", "val"):
        (other / "ucc" / f"{split}.csv").write_bytes((shared.data_dir / "ucc" / f"{split}.csv").read_bytes())
    real_test = pd.read_csv(data_dir() / "ucc" / "test.csv", dtype=str, keep_default_na=False)
    real_test.iloc[500:548].to_csv(other / "ucc" / "test.csv", index=False)
    again = retrain_best(study, spec, other, tmp_path / "best", n_resamples=10).model_dump(mode="json")
    assert again["thresholds"] == pytest.approx(metrics["thresholds"], abs=1e-4)
    assert again["test"]["default"]["per_label"] != metrics["test"]["default"]["per_label"]


def test_study_report_includes_the_retrained_models_test_figures(retrained):
    _, spec, shared, root, url, _, metrics = retrained
    html = report_study(NAME, url, shared.data_dir, runs_root=root / "runs")
    table = pd.read_csv(html.parent / "best_test_before_after.csv").set_index("metric")
    assert table.loc["macro_f1", "at 0.5"] == pytest.approx(metrics["test"]["default"]["macro_f1"])
    assert "Retrained best model" in (html.parent / "report.md").read_text()


def test_predict_labels_a_csv_and_texts(retrained, tmp_path, capsys):
    _, _, _, _, _, best_dir, _ = retrained
    texts = ["You are an idiot and everyone knows it", "Thanks, that is a helpful point.", "Well, maybe."]
    pd.DataFrame({"id": [1, 2, 3], "comment": texts}).to_csv(tmp_path / "in.csv", index=False)
    assert predict(str(best_dir), None, str(tmp_path / "in.csv"), None, str(tmp_path / "out.csv")) == 3
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    best = load_best(best_dir)
    probs, _ = predict_probabilities(best, texts)
    names = best.labels.names
    assert list(out["text"]) == texts
    np.testing.assert_allclose(out[[f"p_{n}" for n in names]].to_numpy(), probs, atol=1e-6)
    expected = ["; ".join(n for n, on in zip(names, row >= best.thresholds) if on) for row in probs]
    assert list(out["labels"]) == expected
    predict(str(best_dir), texts[:2], None, None, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == texts[:2] and set(lines[0]["probabilities"]) == set(names)
    with pytest.raises(HpoError, match="no column 'body'"):
        predict(str(best_dir), None, str(tmp_path / "in.csv"), "body", None)


def test_score_trials_keeps_test_scores_apart_from_the_study(retrained):
    study, spec, shared, _, url, _, _ = retrained
    with pytest.raises(HpoError, match="test_scores: false"):
        score_trials(study, spec, shared.data_dir)
    raw = yaml.safe_load(shared.spec_path.read_text()) | {"name": "scored", "test_scores": True}
    scored = optuna.create_study(study_name="scored", storage=url, direction="maximize")
    scored.set_user_attr("spec_resolved", StudySpec.model_validate(raw).model_dump(mode="json"))
    params = {"batch_size": 32, "learning_rate": 3e-3}
    dists = {k: CategoricalDistribution(GRID[k]) for k in params}
    scored.add_trial(create_trial(state=TrialState.COMPLETE, value=0.3, params=params, distributions=dists, user_attrs={"best_epoch": 1}))
    scored, scored_spec = open_existing_study("scored", url)
    assert score_trials(scored, scored_spec, shared.data_dir) == [0]
    assert score_trials(scored, scored_spec, shared.data_dir) == []  # already scored
    value = scored.user_attrs["test_scores_0000"]["tuned_macro_f1"]
    assert 0 <= value <= 1
    assert trials_table(scored, scored_spec).loc[0, TEST_COLUMN] == value
    assert scored.best_value == 0.3  # the trial's own value is untouched
