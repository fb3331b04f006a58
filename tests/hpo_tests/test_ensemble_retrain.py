"""`selection: {ensemble: candidates}`: `hpo select` saves its re-runs' models, `hpo retrain`
reuses them, trains only the search's own seeds, and delivers the mean probability of every
candidate's seeds as one model, which `hpo predict` and `hpo compress` use like any other (the
distilled student learns from the whole ensemble)."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hpo.best import predict, retrain_best
from hpo.best.select import select
from hpo.deploy.compress import compress_study
from hpo.deploy.layout import VariantRecord, variant_dir
from hpo.deploy.runtime import load_predictor
from hpo.deploy.settings import CompressSpec
from hpo.report import open_existing_study
from hpo.spec import SelectionSpec
from testing.studies import TINY_NAME as NAME
from trainers.checkpoint import BestModel, SavedRun, load_best
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
    selection = SelectionSpec(top_k=2, seeds=2, ensemble="candidates", prune=False)
    spec = spec.model_copy(update={"selection": selection})
    members = root / "runs" / NAME / "members"
    select(study, spec, tiny_study.data_dir, members_root=members)
    saved = {d.name: (d / "model.safetensors").stat().st_mtime_ns for d in members.iterdir()}
    best_dir = root / "runs" / NAME / "best"
    metrics = retrain_best(
        study, spec, tiny_study.data_dir, best_dir, n_resamples=20, members_dir=members
    )
    return spec, tiny_study, best_dir, metrics, saved, members


def test_selection_models_are_reused_and_only_the_search_seeds_trained(ensembled):
    _, _, best_dir, metrics, saved, members = ensembled
    assert len(saved) == 2  # one re-run (seed 2 of 2) for each of the top two trials
    now = {d.name: (d / "model.safetensors").stat().st_mtime_ns for d in members.iterdir()}
    assert len(now) == 4 and all(now[name] == t for name, t in saved.items())  # not trained again
    trials = [m.trial for m in metrics.members]
    assert trials[:2] == [metrics.trial] * 2 and len(trials) in (2, 4)
    n = len(metrics.members)
    assert f"averages the probabilities of {n} models" in (best_dir / "report.md").read_text()


def test_the_ensemble_keeps_the_trials_that_score_best_on_validation(ensembled):
    """The delivered members are those of the first j trials whose mean scores best on val."""
    spec, shared, best_dir, metrics, _, members = ensembled
    config = spec.train_config(shared.data_dir, {})
    val = load_split(config.data.val_path, config.data, config.task)
    y = val.labels.astype(np.int64)

    def score(probs) -> float:
        return compute_metrics(config.task, y, np.mean(probs, axis=0), config.data.label_names)[
            spec.objective.metric
        ]

    runs = {m.trial: [] for m in metrics.members}
    for d in sorted(members.iterdir()):
        runs.setdefault(int(d.name.split("-")[1]), []).append(np.array(SavedRun.read(d).val_probs))
    chosen, other = metrics.trial, next(t for t in runs if t != metrics.trial)
    prefixes = {2: score(runs[chosen]), 4: score(runs[chosen] + runs[other])}
    assert len(metrics.members) == max(prefixes, key=lambda n: (prefixes[n], -n))
    best = load_best(best_dir)
    assert isinstance(best.model, SeedEnsemble)
    each = [
        predict_probabilities(BestModel(m, best.tokenizer, best.labels, None, None), val.texts)[0]
        for m in members_of(best.model)
    ]
    assert len(each) == len(metrics.members) and not np.allclose(each[0], each[1], atol=1e-4)
    assert metrics.val["monitor_value"] == pytest.approx(score(each), abs=1e-3)
    assert metrics.val["monitor_value"] == pytest.approx(prefixes[len(each)], abs=1e-3)


def test_a_saved_member_of_another_configuration_is_trained_again(ensembled, tmp_path):
    from hpo.best.members import obtain

    _, _, _, _, _, members = ensembled
    source = shutil.copytree(next(members.iterdir()), tmp_path / "member")
    config = SavedRun.read(source).config
    longer = config.hyper.model_copy(update={"epochs": config.hyper.epochs + 1})
    other = config.model_copy(update={"hyper": longer, "save_model_dir": source})
    member = obtain(other)
    assert not member.reused and SavedRun.read(source).config.hyper == longer
    assert obtain(other).reused


def test_predict_and_compress_treat_the_ensemble_as_one_model(ensembled, tmp_path):
    spec, shared, best_dir, *_ = ensembled
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
    with pytest.raises(ValidationError, match="ensemble: seeds needs thresholds: val"):
        SelectionSpec(ensemble=True, thresholds="cross_fit")
    assert SelectionSpec(ensemble=True).ensemble == "seeds" and SelectionSpec().ensemble == "none"
