"""Retraining the best trial: a directory that reloads and predicts what was scored, thresholds
from validation only, the study report picking up the test figures, and `hpo retrain` and `hpo
predict` through their command lines (multi-label; multi-class with hand-made features)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from hpo import stored
from hpo.best import predict, retrain_best, score_trials
from hpo.errors import HpoError
from hpo.report import open_existing_study, report_study, trials_table
from hpo.report.tables import TEST_COLUMN
from hpo.spec import StudySpec
from hpo.stored import BestMetrics
from testing.data import RealData
from testing.specs import tiny_covid_spec
from testing.studies import TINY_NAME, TinyStudy, run_tiny_study
from testing.workers import run_hpo
from trainers.checkpoint import FEATURES_FILE, load_best
from trainers.data import load_split
from trainers.evaluate import multi_label_scores, predict_probabilities
from trainers.thresholds import calibrated_f1_thresholds

TEXTS = [
    "You are an idiot and everyone knows it",
    "Thanks, that is a helpful point.",
    "Well, maybe.",
]


@dataclass(frozen=True)
class Retrained:
    study: optuna.Study
    spec: StudySpec
    shared: TinyStudy
    root: Path  # runs/ lies under it
    url: str
    best_dir: Path
    metrics: BestMetrics


@pytest.fixture(scope="module")
def retrained(tmp_path_factory, tiny_study: TinyStudy) -> Retrained:
    root = tmp_path_factory.mktemp("retrain")
    url = tiny_study.copy_to(root)
    study, spec = open_existing_study(TINY_NAME, url)
    best_dir = root / "runs" / TINY_NAME / "best"
    metrics = retrain_best(study, spec, tiny_study.data_dir, best_dir, n_resamples=50)
    return Retrained(study, spec, tiny_study, root, url, best_dir, metrics)


def test_best_directory_holds_model_labels_thresholds_and_metrics(retrained):
    study, best_dir, metrics = retrained.study, retrained.best_dir, retrained.metrics
    names = {p.name for p in best_dir.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "labels.json",
        "thresholds.json",
        "metrics.json",
        "report.html",
        "report.md",
    } <= names
    assert BestMetrics.read(best_dir) == metrics
    assert (
        metrics.trial == study.best_trial.number
        and metrics.epochs == study.best_trial.user_attrs["best_epoch"]
    )
    # Same configuration, seed and schedule, stopped at the best epoch: the model the trial scored.
    assert metrics.objective.retrained_val_value == pytest.approx(study.best_trial.value, abs=1e-6)
    for key in ("default.macro_f1", "tuned.macro_f1", "macro_roc_auc"):
        low, high = metrics.test.intervals[key]
        assert 0 <= low <= high <= 1
    assert metrics.model_size_mb > 0 and metrics.texts_per_s > 0
    assert "Thresholds were chosen on validation only" in (best_dir / "report.md").read_text()
    before_after = pd.read_csv(best_dir / "test_before_after.csv").set_index("metric")
    assert before_after.loc["macro_f1", "tuned thresholds"] == pytest.approx(
        metrics.test.tuned["macro_f1"]
    )


def test_labels_the_retrained_model_never_predicts_are_warned_about(retrained):
    """A tiny model on 64 rows leaves rare labels unpredicted at 0.5: the report must say so."""
    per_label = retrained.metrics.test.default["per_label"]
    never = [name for name, scores in per_label.items() if scores["predicted_positive"] == 0]
    assert never, (
        "the tiny model predicts every label at 0.5 on test: this test needs another model"
    )
    warning = f"retrained model: never predicted at 0.5 on test: {', '.join(never)}"
    assert warning in retrained.metrics.collapse
    assert f"> **Warning:** {warning}" in (retrained.best_dir / "report.md").read_text()


def test_reloaded_model_reproduces_the_scores_and_thresholds_come_from_val(retrained):
    spec, metrics = retrained.spec, retrained.metrics
    best = load_best(retrained.best_dir)
    data = spec.data_config(retrained.shared.data_dir)
    test = load_split(data.test_path, data, spec.task)
    probs, _ = predict_probabilities(best, test.texts)
    for scored, thresholds in ((metrics.test.default, 0.5), (metrics.test.tuned, best.thresholds)):
        scores = multi_label_scores(test.labels, probs, best.labels.names, thresholds)
        assert scores["macro_f1"] == pytest.approx(scored["macro_f1"])
        assert (
            scores["per_label"]["healthy"]["confusion"]
            == scored["per_label"]["healthy"]["confusion"]
        )
    val = load_split(data.val_path, data, spec.task)
    val_probs, _ = predict_probabilities(best, val.texts)
    np.testing.assert_allclose(
        best.thresholds, calibrated_f1_thresholds(val.labels, val_probs), atol=1e-5
    )


def test_a_different_test_file_changes_no_threshold(retrained, tmp_path, real_data: RealData):
    other = tmp_path / "data"
    (other / "ucc").mkdir(parents=True)
    for split in ("train", "val"):
        (other / "ucc" / f"{split}.csv").write_bytes(
            (retrained.shared.data_dir / "ucc" / f"{split}.csv").read_bytes()
        )
    real_test = pd.read_csv(real_data.root / "ucc" / "test.csv", dtype=str, keep_default_na=False)
    real_test.iloc[500:548].to_csv(other / "ucc" / "test.csv", index=False)
    again = retrain_best(retrained.study, retrained.spec, other, tmp_path / "best", n_resamples=10)
    assert again.thresholds == pytest.approx(retrained.metrics.thresholds, abs=1e-4)
    assert again.test.default["per_label"] != retrained.metrics.test.default["per_label"]


def test_study_report_includes_the_retrained_models_test_figures(retrained):
    html = report_study(
        TINY_NAME, retrained.url, retrained.shared.data_dir, runs_root=retrained.root / "runs"
    )
    table = pd.read_csv(html.parent / "best_test_before_after.csv").set_index("metric")
    assert table.loc["macro_f1", "at 0.5"] == pytest.approx(
        retrained.metrics.test.default["macro_f1"]
    )
    assert "Retrained best model" in (html.parent / "report.md").read_text()


class _References(HTMLParser):
    """Every src= and href= of the page's tags (a script's own text is not parsed as tags)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.inline_script_chars = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.found += [value or "" for name, value in attrs if name in ("src", "href")]
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.inline_script_chars += len(data)


def test_reports_open_offline(retrained):
    """report.html loads nothing from the network: no tag points outside the file, and
    plotly.js (some 3-4 MB) is inlined in the page itself."""
    study_report = report_study(
        TINY_NAME, retrained.url, retrained.shared.data_dir, runs_root=retrained.root / "runs"
    )
    for page in (study_report, retrained.best_dir / "report.html"):
        references = _References()
        references.feed(page.read_text())
        assert not [r for r in references.found if r.startswith(("http:", "https:", "//"))], page
        assert references.inline_script_chars > 1_000_000, page


def test_predict_labels_a_csv_and_texts(retrained, tmp_path, capsys):
    best_dir = retrained.best_dir
    pd.DataFrame({"id": [1, 2, 3], "comment": TEXTS}).to_csv(tmp_path / "in.csv", index=False)
    assert (
        predict(str(best_dir), None, str(tmp_path / "in.csv"), None, str(tmp_path / "out.csv"))
        == 3
    )
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    best = load_best(best_dir)
    probs, _ = predict_probabilities(best, TEXTS)
    names = best.labels.names
    assert list(out["text"]) == TEXTS
    np.testing.assert_allclose(out[[f"p_{n}" for n in names]].to_numpy(), probs, atol=1e-6)
    expected = [
        "; ".join(n for n, on in zip(names, row >= best.thresholds, strict=False) if on)
        for row in probs
    ]
    assert list(out["labels"]) == expected
    predict(str(best_dir), TEXTS[:2], None, None, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == TEXTS[:2] and set(lines[0]["probabilities"]) == set(names)
    with pytest.raises(HpoError, match="no column 'body'"):
        predict(str(best_dir), None, str(tmp_path / "in.csv"), "body", None)


def _predict_command(best_dir: Path, texts: list[str], text_column: str, out: Path) -> None:
    """`hpo predict DIR --file in.csv --out OUT` in a process of its own."""
    pd.DataFrame({text_column: texts}).to_csv(out.with_name("in.csv"), index=False)
    done = run_hpo(
        "predict", str(best_dir), "--file", str(out.with_name("in.csv")), "--out", str(out)
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"labelled {len(texts)} text(s): {out}"


def test_predict_command_writes_json_lines(retrained, tmp_path):
    best = load_best(retrained.best_dir)
    probs, _ = predict_probabilities(best, TEXTS)
    names = best.labels.names
    _predict_command(retrained.best_dir, TEXTS, "comment", tmp_path / "out.jsonl")
    records = [
        json.loads(line)
        for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["text"] for r in records] == TEXTS
    assert [r["labels"] for r in records] == [
        [n for n, on in zip(names, row >= best.thresholds, strict=True) if on] for row in probs
    ]
    np.testing.assert_allclose(
        [[r["probabilities"][n] for n in names] for r in records], probs, atol=1e-5
    )


def test_retrain_and_predict_commands_on_a_multi_class_model_with_hand_made_features(
    tmp_path, real_data: RealData
):
    """COVID tweets' 5 classes, the transformer fused with lexicon, readability and TF-IDF
    features: no thresholds, the most probable class, the fitted features saved beside the model."""
    data = real_data.slice(tmp_path / "data", "covid-tweets", {"train": 96, "val": 48, "test": 48})
    url = f"sqlite:///{tmp_path}/optuna.db"
    (trial,) = run_tiny_study(
        tiny_covid_spec(tmp_path / "spec.yaml", training={"features": True}), url, data
    ).trials

    done = run_hpo(
        "retrain",
        "tiny-covid",
        "--storage",
        url,
        "--data-dir",
        str(data),
        "--resamples",
        "20",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    best_dir = tmp_path / "runs" / "tiny-covid" / "best"
    metrics = BestMetrics.read(best_dir)
    assert metrics is not None and metrics.trial == trial.number and metrics.task == "multi_class"
    assert metrics.objective.retrained_val_value == pytest.approx(trial.value, abs=1e-6)
    assert (
        metrics.thresholds is None
        and metrics.test.tuned is None
        and not (best_dir / "thresholds.json").exists()
    )
    assert (
        f"best model: runs/tiny-covid/best  test accuracy {metrics.test.default['accuracy']:.4f}"
        in done.stdout
    )
    best = load_best(best_dir)
    assert (best_dir / FEATURES_FILE).is_file() and best.extractor is not None

    test = pd.read_csv(
        data / "covid-tweets" / "test.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False
    )
    texts = test["OriginalTweet"].head(5).tolist()
    _predict_command(best_dir, texts, "OriginalTweet", tmp_path / "out.csv")
    table = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    probs, _ = predict_probabilities(best, texts)
    names = best.labels.names
    assert list(table["label"]) == [names[i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose(table[[f"p_{n}" for n in names]].to_numpy(), probs, atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)


# ---- test scores after the study ------------------------------------------------------------------


def test_score_trials_retrains_each_trial_and_keeps_its_test_scores_apart(retrained, tmp_path):
    with pytest.raises(HpoError, match="test_scores: false"):
        score_trials(retrained.study, retrained.spec, retrained.shared.data_dir)
    study, _ = open_existing_study(TINY_NAME, retrained.shared.copy_to(tmp_path))
    study.set_user_attr(
        stored.SPEC_RESOLVED, {**study.user_attrs[stored.SPEC_RESOLVED], "test_scores": True}
    )
    best = study.best_trial.number
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        if t.number != best:  # scored already: only the best trial is retrained here
            study.set_user_attr(stored.test_scores_key(t.number), {"tuned_macro_f1": -1.0})
    study, spec = open_existing_study(TINY_NAME, f"sqlite:///{tmp_path}/optuna.db")

    assert score_trials(study, spec, retrained.shared.data_dir) == [best]
    assert score_trials(study, spec, retrained.shared.data_dir) == []  # nothing left to score
    value = study.user_attrs[stored.test_scores_key(best)]["tuned_macro_f1"]
    # Retrained as `hpo retrain` retrains it: the same model, so the same test score.
    assert value == pytest.approx(retrained.metrics.test.tuned["macro_f1"], abs=1e-6)
    assert trials_table(study, spec).set_index("trial").loc[best, TEST_COLUMN] == value
