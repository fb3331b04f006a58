"""`blend:` in a spec: `hpo retrain` fits an n-gram model on train, keeps the weight that scores
best on validation, chooses the thresholds on the mix, and every way of predicting with the
saved model (load_best, `hpo predict`, the int8 and ONNX variants) applies the same mix."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from hpo.best import predict, retrain_best
from hpo.deploy.compress import compress_study
from hpo.deploy.layout import variant_dir
from hpo.deploy.runtime import load_predictor
from hpo.deploy.settings import CompressSpec
from hpo.report import open_existing_study
from hpo.spec import BlendSpec
from testing.studies import TINY_NAME as NAME
from trainers.checkpoint import LABELS_FILE, NGRAM_FILE, load_best
from trainers.data import load_split
from trainers.evaluate import predict_probabilities
from trainers.metrics import compute_metrics
from trainers.ngram import NGRAM_WEIGHTS_FILE
from trainers.thresholds import calibrated_f1_thresholds

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def blended(tmp_path_factory, tiny_study):
    root = tmp_path_factory.mktemp("blend")
    study, spec = open_existing_study(NAME, tiny_study.copy_to(root))
    spec = spec.model_copy(update={"blend": BlendSpec(weights=(0.5,))})
    best_dir = root / "runs" / NAME / "best"
    metrics = retrain_best(study, spec, tiny_study.data_dir, best_dir, n_resamples=20)
    config = spec.train_config(tiny_study.data_dir, {})
    return spec, tiny_study, best_dir, metrics, config


def test_the_weight_is_the_candidate_that_scores_best_on_validation(blended):
    spec, _, best_dir, metrics, _ = blended
    record = metrics.blend
    assert set(record.by_weight) == {"0", "0.5"}  # the model alone is always a candidate
    best = max(record.by_weight.values())
    assert record.by_weight[f"{record.weight:g}"] == best
    assert metrics.val["monitor_value"] == pytest.approx(best)
    assert (
        record.model_val_value == record.by_weight["0"] and record.metric == spec.objective.metric
    )
    # on 64 training comments the tiny transformer is near chance; the n-grams add to it
    assert record.weight == 0.5, record
    assert "n-gram logistic regression at weight 0.5" in (best_dir / "report.md").read_text()


def test_the_saved_model_predicts_the_mix_and_its_thresholds_are_the_mixs(blended):
    _, shared, best_dir, metrics, config = blended
    card = json.loads((best_dir / LABELS_FILE).read_text())
    assert {NGRAM_FILE, NGRAM_WEIGHTS_FILE} <= set(card["files"])  # hashed like the weights
    saved = load_best(best_dir)
    val = load_split(config.data.val_path, config.data, config.task)
    mixed, _ = predict_probabilities(saved, val.texts)
    alone, _ = predict_probabilities(saved._replace(blend=None), val.texts)
    ngrams = saved.blend.model.probabilities(val.texts)
    np.testing.assert_allclose(mixed, 0.5 * alone + 0.5 * ngrams, atol=1e-6)
    y = val.labels.astype(np.int64)
    np.testing.assert_allclose(saved.thresholds, calibrated_f1_thresholds(y, mixed), atol=1e-4)
    scored = compute_metrics(config.task, y, alone, config.data.label_names)
    assert scored[config.monitor] == pytest.approx(metrics.blend.model_val_value, abs=1e-3)


def test_predict_and_the_variants_apply_the_same_mix(blended, tmp_path):
    spec, shared, best_dir, metrics, config = blended
    test = load_split(config.data.test_path, config.data, config.task)
    out = tmp_path / "p.csv"
    predict(str(best_dir), test.texts, None, None, str(out))
    probs = predict_probabilities(load_best(best_dir), test.texts)[0]
    y = test.labels.astype(np.int64)
    scored = compute_metrics(config.task, y, probs, config.data.label_names)
    assert scored["macro_roc_auc"] == pytest.approx(metrics.test.default["macro_roc_auc"])
    printed = pd.read_csv(out).filter(like="p_").to_numpy()  # rounded to 6 decimals
    np.testing.assert_allclose(printed, probs, atol=1e-6)
    variants = ["int8", *(["onnx"] if HAS_ORT else [])]
    settings = CompressSpec.model_validate(
        {"variants": variants, "single_texts": 10, "resamples": 10}
    )
    compress_study(spec, best_dir, shared.data_dir, settings)
    alone = predict_probabilities(load_best(best_dir)._replace(blend=None), test.texts)[0]
    assert np.abs(alone - probs).max() > 0.05  # the blend moves the probabilities
    for variant in variants:
        assert (variant_dir(best_dir, variant) / NGRAM_FILE).is_file()
        got = load_predictor(best_dir, variant).probabilities(test.texts)
        assert np.abs(got - probs).max() < 0.02, variant  # int8 rounding, not a missing blend


def test_a_blend_weight_outside_the_unit_interval_is_one_line(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"weights must be in \[0, 1\), got \[1.0\]"):
        BlendSpec(weights=(0.2, 1.0))
    assert BlendSpec(weights=(0.3,)).weights == (0.0, 0.3)
