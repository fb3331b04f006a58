"""`selection: {ensemble: true}`: `hpo retrain` trains the chosen configuration once per seed and
delivers their mean probability as one model, which `hpo predict` and `hpo compress` use like
any other (the distilled student learns from the whole ensemble)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hpo.best import predict, retrain_best
from hpo.deploy.compress import compress_study
from hpo.deploy.layout import VariantRecord, variant_dir
from hpo.deploy.runtime import load_predictor
from hpo.deploy.settings import CompressSpec
from hpo.report import open_existing_study
from hpo.spec import SelectionSpec
from testing.studies import TINY_NAME as NAME
from trainers.checkpoint import BestModel, load_best
from trainers.data import load_split
from trainers.ensemble import SeedEnsemble, members_of
from trainers.evaluate import predict_probabilities
from trainers.metrics import compute_metrics

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
VARIANTS = ["int8", "distilled", *(["onnx", "distilled-onnx-int8"] if HAS_ORT else [])]


@pytest.fixture(scope="module")
def ensembled(tmp_path_factory, tiny_study):
    root = tmp_path_factory.mktemp("ensemble")
    study, spec = open_existing_study(NAME, tiny_study.copy_to(root))
    spec = spec.model_copy(update={"selection": SelectionSpec(seeds=2, ensemble=True)})
    best_dir = root / "runs" / NAME / "best"
    metrics = retrain_best(study, spec, tiny_study.data_dir, best_dir, n_resamples=20)
    return spec, tiny_study, best_dir, metrics


def test_the_delivered_model_averages_two_seeds_scored_on_validation(ensembled):
    spec, shared, best_dir, metrics = ensembled
    assert metrics.seeds == 2 and "with 2 seeds" in (best_dir / "report.md").read_text()
    best = load_best(best_dir)
    assert isinstance(best.model, SeedEnsemble)
    config = spec.train_config(shared.data_dir, {})
    val = load_split(config.data.val_path, config.data, config.task)
    each = [
        predict_probabilities(BestModel(m, best.tokenizer, best.labels, None, None), val.texts)[0]
        for m in members_of(best.model)
    ]
    assert not np.allclose(each[0], each[1], atol=1e-4)  # two seeds, two models
    mean = compute_metrics(
        config.task, val.labels.astype(np.int64), np.mean(each, axis=0), config.data.label_names
    )
    assert metrics.val["monitor_value"] == pytest.approx(mean[spec.objective.metric], abs=1e-3)
    assert len(metrics.val["member_values"]) == 2


def test_predict_and_compress_treat_the_ensemble_as_one_model(ensembled, tmp_path):
    spec, shared, best_dir, _ = ensembled
    settings = CompressSpec.model_validate({"variants": VARIANTS, "distill": {"epochs": 1, "learning_rate": 1e-3},
                                            "single_texts": 10, "resamples": 10})  # fmt: skip
    compress_study(spec, best_dir, shared.data_dir, settings)
    texts = ["you people are all the same", "thanks, that was a kind reply", "what?"]
    predict(str(best_dir), texts, None, None, str(tmp_path / "fp32.csv"))
    reference = pd.read_csv(tmp_path / "fp32.csv")
    assert len(reference.filter(like="p_").columns) == len(spec.data.label_columns)
    for variant in VARIANTS:
        predict(
            str(best_dir), texts, None, None, str(tmp_path / f"{variant}.csv"), variant=variant
        )
        assert list(pd.read_csv(tmp_path / f"{variant}.csv").columns) == list(reference.columns)
    student = VariantRecord.read(variant_dir(best_dir, "distilled"))
    teacher_parameters = sum(p.numel() for p in load_predictor(best_dir).model.parameters())
    assert student.details["teacher_parameters"] == teacher_parameters  # both members taught
    assert not isinstance(load_predictor(best_dir, "distilled").model, SeedEnsemble)


def test_an_ensemble_with_cross_fitted_thresholds_is_refused():
    with pytest.raises(ValidationError, match="ensemble: true needs thresholds: val"):
        SelectionSpec(ensemble=True, thresholds="cross_fit")
