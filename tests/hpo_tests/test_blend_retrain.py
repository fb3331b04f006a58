"""`blend:` in a spec: `hpo retrain` fits side models on train, keeps the weights that score
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
from hpo.stored import weights_key
from testing.studies import TINY_NAME as NAME
from trainers.blend import Blend
from trainers.checkpoint import BLEND_FILES, LABELS_FILE, load_best, save_best
from trainers.config import PACKAGED_MINILM
from trainers.data import load_split
from trainers.embeddings import EmbeddingModel, SentenceEncoder
from trainers.evaluate import predict_probabilities
from trainers.metrics import compute_metrics
from trainers.ngram import NGRAM_WEIGHTS_FILE, NgramModel
from trainers.thresholds import calibrated_f1_thresholds

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None


@pytest.fixture(scope="module")
def blended(tmp_path_factory, tiny_study):
    root = tmp_path_factory.mktemp("blend")
    study, spec = open_existing_study(NAME, tiny_study.copy_to(root))
    spec = spec.model_copy(
        update={
            "blend": BlendSpec(
                models=("ngrams", "embeddings"), encoder=PACKAGED_MINILM, weights=(0.5,)
            )
        }
    )
    best_dir = root / "runs" / NAME / "best"
    metrics = retrain_best(study, spec, tiny_study.data_dir, best_dir, n_resamples=20)
    config = spec.train_config(tiny_study.data_dir, {})
    return spec, tiny_study, best_dir, metrics, config


@pytest.fixture(scope="module")
def two_sided(blended, tmp_path_factory):
    """The retrained model saved again with both side models in its mix, fitted on train as
    `hpo retrain` fits them, at fixed weights: what every way of predicting must apply."""
    spec, shared, best_dir, metrics, config = blended
    saved = load_best(best_dir)
    train = load_split(config.data.train_path, config.data, config.task)
    sides = {
        "ngrams": NgramModel.fit(train.texts, train.labels, config.task),
        "embeddings": EmbeddingModel.fit(
            train.texts, train.labels, config.task, SentenceEncoder.load(PACKAGED_MINILM, 128)
        ),
    }
    blend = Blend({"ngrams": (sides["ngrams"], 0.3), "embeddings": (sides["embeddings"], 0.2)})
    target = tmp_path_factory.mktemp("two-sided") / "best"
    save_best(target, saved.model, saved.tokenizer, saved.labels, saved.thresholds, None, blend)
    metrics.write(target)  # hpo compress reads it
    return spec, shared, target, config, sides


def test_the_weights_are_the_candidate_that_scores_best_on_validation(blended):
    spec, _, best_dir, metrics, _ = blended
    record = metrics.blend
    candidates = ["ngrams=0 embeddings=0", "ngrams=0 embeddings=0.5", "ngrams=0.5 embeddings=0"]
    assert sorted(record.by_weights) == candidates  # the model alone is always a candidate
    best = max(record.by_weights.values())
    assert record.by_weights[weights_key(record.weights)] == best
    assert metrics.val["monitor_value"] == pytest.approx(best)
    assert record.model_val_value == record.by_weights[candidates[0]]
    assert set(record.side_val_values) == {"ngrams", "embeddings"}
    assert record.metric == spec.objective.metric
    # on 64 training comments the tiny transformer is near chance; a side model adds to it
    (kept,) = record.kept.items()
    assert kept[1] == 0.5, record
    report = (best_dir / "report.md").read_text()
    assert "logistic regression at weight 0.5" in report, report


def test_the_saved_model_predicts_the_mix_and_its_thresholds_are_the_mixs(blended):
    _, shared, best_dir, metrics, config = blended
    (kind,) = metrics.blend.kept
    card = json.loads((best_dir / LABELS_FILE).read_text())
    assert BLEND_FILES[kind] in card["files"]  # hashed like the weights
    saved = load_best(best_dir)
    val = load_split(config.data.val_path, config.data, config.task)
    mixed, _ = predict_probabilities(saved, val.texts)
    alone, _ = predict_probabilities(saved._replace(blend=None), val.texts)
    side = saved.blend.parts[kind][0].probabilities(val.texts)
    np.testing.assert_allclose(mixed, 0.5 * alone + 0.5 * side, atol=1e-6)
    y = val.labels.astype(np.int64)
    np.testing.assert_allclose(saved.thresholds, calibrated_f1_thresholds(y, mixed), atol=1e-4)
    scored = compute_metrics(config.task, y, alone, config.data.label_names)
    assert scored[config.monitor] == pytest.approx(metrics.blend.model_val_value, abs=1e-3)


def test_both_side_models_are_saved_hashed_and_mixed(two_sided):
    _, _, target, config, sides = two_sided
    card = json.loads((target / LABELS_FILE).read_text())
    assert {*BLEND_FILES.values(), NGRAM_WEIGHTS_FILE} <= set(card["files"])
    saved = load_best(target)
    assert saved.blend.weights == {"ngrams": 0.3, "embeddings": 0.2}
    val = load_split(config.data.val_path, config.data, config.task)
    mixed, _ = predict_probabilities(saved, val.texts)
    alone, _ = predict_probabilities(saved._replace(blend=None), val.texts)
    expected = 0.5 * alone + sum(w * sides[k].probabilities(val.texts) for k, w in saved.blend.weights.items())  # fmt: skip
    np.testing.assert_allclose(mixed, expected, atol=1e-6)


def test_predict_and_the_variants_apply_the_same_mix(two_sided, tmp_path):
    spec, shared, best_dir, config, _ = two_sided
    test = load_split(config.data.test_path, config.data, config.task)
    out = tmp_path / "p.csv"
    predict(str(best_dir), test.texts, None, None, str(out))
    probs = predict_probabilities(load_best(best_dir), test.texts)[0]
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
        assert {f.name for f in variant_dir(best_dir, variant).iterdir()} >= set(
            BLEND_FILES.values()
        )
        got = load_predictor(best_dir, variant).probabilities(test.texts)
        assert np.abs(got - probs).max() < 0.02, variant  # int8 rounding, not a missing blend


def test_a_blend_weight_outside_the_unit_interval_is_one_line(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=r"weights must be in \[0, 1\), got \[1.0\]"):
        BlendSpec(weights=(0.2, 1.0))
    assert BlendSpec(weights=(0.3,)).weights == (0.0, 0.3)


def test_candidates_cap_the_side_models_total_weight():
    spec = BlendSpec(models=("ngrams", "embeddings"), weights=(0.2, 0.4))
    got = spec.candidates()
    assert got[0] == {"ngrams": 0.0, "embeddings": 0.0}  # the model alone, tried first
    assert {"ngrams": 0.2, "embeddings": 0.2} in got
    assert all(sum(c.values()) <= 0.4 + 1e-9 for c in got) and len(got) == 6
    assert [sum(c.values()) for c in got] == sorted(sum(c.values()) for c in got)


def test_old_metrics_of_an_ngram_only_blend_still_read():
    from hpo.stored import BlendRecord

    old = {"metric": "macro_roc_auc", "weight": 0.6, "model_val_value": 0.77, "ngram_val_value": 0.7, "by_weight": {"0": 0.77, "0.6": 0.78}}  # fmt: skip
    record = BlendRecord.model_validate(old)
    assert record.kept == {"ngrams": 0.6} and record.side_val_values == {"ngrams": 0.7}
    assert record.by_weights == {"ngrams=0": 0.77, "ngrams=0.6": 0.78}
