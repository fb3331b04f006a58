"""`hpo compress` on a tiny retrained model: every variant loads and predicts through `hpo
predict` with the same columns, thresholds are re-tuned on validation per variant, pruning
removes parameters and bytes, the directories hold data only, and the report names a trade-off."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from hpo.best import predict, retrain_best
from hpo.deploy.compress import compress_study
from hpo.deploy.layout import (
    VariantFigures,
    VariantRecord,
    deploy_root,
    size_on_disk_mb,
    variant_dir,
)
from hpo.deploy.measure import Splits
from hpo.deploy.runtime import load_predictor
from hpo.deploy.settings import CompressSpec
from hpo.deploy.support import Source
from hpo.deploy.variants import VARIANTS
from hpo.errors import HpoError
from hpo.report import open_existing_study
from testing.studies import TINY_NAME as NAME
from trainers.thresholds import calibrated_f1_thresholds

HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
NO_ORT = "onnxruntime is not installed (pip install -e '.[deploy]')"
TORCH_VARIANTS = ("int8", "pruned", "distilled")
SETTINGS = CompressSpec.model_validate({
    "variants": list(VARIANTS) if HAS_ORT else list(TORCH_VARIANTS),
    "prune": {"heads_kept": 0.5, "neurons_kept": 0.5, "importance_texts": 32, "recovery": {"epochs": 1}},
    "distill": {"epochs": 1, "learning_rate": 1e-3},
    "single_texts": 10, "resamples": 20,
})  # fmt: skip


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, tiny_study):
    shared = tiny_study
    root = tmp_path_factory.mktemp("deploy")
    study, spec = open_existing_study(NAME, shared.copy_to(root))
    best_dir = root / "runs" / NAME / "best"
    retrain_best(study, spec, shared.data_dir, best_dir, n_resamples=20)
    report = compress_study(spec, best_dir, shared.data_dir, SETTINGS)
    return spec, shared, best_dir, report


def built(best_dir) -> list[str]:
    return [
        v
        for v in SETTINGS.variants
        if (variant_dir(best_dir, v) / VariantRecord.FILENAME).is_file()
    ]


def test_every_variant_predicts_with_the_columns_of_the_fp32_model(compressed, tmp_path):
    _, _, best_dir, _ = compressed
    assert built(best_dir) == SETTINGS.variants
    texts = ["you people are all the same", "thanks, that was a kind reply", "what?"]
    predict(str(best_dir), texts, None, None, str(tmp_path / "fp32.csv"))
    reference = pd.read_csv(tmp_path / "fp32.csv")
    for variant in SETTINGS.variants:
        predict(
            str(best_dir), texts, None, None, str(tmp_path / f"{variant}.csv"), variant=variant
        )
        predict(
            str(variant_dir(best_dir, variant)),
            texts,
            None,
            None,
            str(tmp_path / f"{variant}-dir.csv"),
        )
        frame = pd.read_csv(tmp_path / f"{variant}.csv")
        assert list(frame.columns) == list(reference.columns) and len(frame) == 3
        pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / f"{variant}-dir.csv"))
        probs = frame.filter(like="p_").to_numpy()
        assert ((probs >= 0) & (probs <= 1)).all()


def test_thresholds_are_retuned_on_validation_for_each_variant(compressed):
    spec, shared, best_dir, _ = compressed
    splits = Splits.load(Source.open(spec, best_dir, shared.data_dir).config)
    for variant in SETTINGS.variants:
        predictor = load_predictor(best_dir, variant)
        val_probs = predictor.probabilities(splits.val_texts)
        expected = calibrated_f1_thresholds(splits.val_labels, val_probs)
        np.testing.assert_allclose(predictor.thresholds, expected, atol=1e-4)
        figures = VariantFigures.read(variant_dir(best_dir, variant))
        assert (
            set(figures.val) == {"macro_roc_auc", "tuned_macro_f1"}
            and figures.texts_per_s_batch64 > 0
        )


def test_pruning_removes_parameters_and_bytes(compressed):
    _, _, best_dir, _ = compressed
    pruned = variant_dir(best_dir, "pruned")
    record = VariantRecord.read(pruned)
    fp32 = load_predictor(best_dir).model
    model = load_predictor(pruned).model
    n_fp32 = sum(p.numel() for p in fp32.parameters())
    assert record.parameters == sum(p.numel() for p in model.parameters()) < n_fp32
    assert record.details["parameters_removed"] == n_fp32 - record.parameters
    assert size_on_disk_mb(pruned) < 0.5 * size_on_disk_mb(
        best_dir
    )  # the tiny model is mostly vocabulary
    layer = model.bert.encoder.layer[0]
    assert (
        layer.attention.self.query.out_features == 16
        and layer.intermediate.dense.out_features == 32
    )
    assert (
        record.details["removed"]["heads"] == "2 of 4"
        and record.details["removed"]["neurons"] == "64 of 128"
    )


def test_the_student_is_shallower_and_trained_on_train_only(compressed):
    _, _, best_dir, _ = compressed
    record = VariantRecord.read(variant_dir(best_dir, "distilled"))
    assert record.details["student_layers"] == [1] and record.details["teacher_layers"] == 2
    assert record.details["trained_on"] == "train split only"
    assert load_predictor(best_dir, "distilled").model.config.num_hidden_layers == 1


@pytest.mark.skipif(not HAS_ORT, reason=NO_ORT)
def test_onnx_runs_the_same_model_and_tokenises_as_transformers(compressed):
    from transformers import AutoTokenizer

    _, shared, best_dir, _ = compressed
    texts = pd.read_csv(shared.data_dir / "ucc" / "val.csv")["comment"].tolist()
    onnx, fp32 = load_predictor(best_dir, "onnx"), load_predictor(best_dir)
    np.testing.assert_allclose(onnx.probabilities(texts), fp32.probabilities(texts), atol=1e-4)
    reference = AutoTokenizer.from_pretrained(best_dir)(
        texts, truncation=True, max_length=fp32.labels.max_length
    )["input_ids"]
    assert [e.ids for e in onnx.tokenizer.encode_batch(texts)] == reference
    assert "torch" not in type(onnx.session).__module__


def test_variant_directories_hold_data_only(compressed):
    _, _, best_dir, _ = compressed
    allowed = {".json", ".safetensors", ".onnx", ".txt", ".md", ".html", ".csv"}
    suffixes = {p.suffix for p in deploy_root(best_dir).rglob("*") if p.is_file()}
    assert suffixes <= allowed, suffixes - allowed


def test_the_report_tables_every_variant_and_names_a_tradeoff(compressed):
    _, _, best_dir, report = compressed
    md = (report.parent / "report.md").read_text()
    assert (
        "Best trade-off: **" in md
        and "validation macro_roc_auc is at least fp32's minus 0.005" in md
    )
    table = pd.read_csv(report.parent / "variants.csv")
    assert table["variant"].tolist() == ["fp32", *SETTINGS.variants]
    assert {"size_mb", "parameters", "texts_per_s_batch1", "texts_per_s_batch64", "latency_p50_ms", "latency_p95_ms",
            "val_macro_roc_auc_95ci", "test_tuned_macro_f1_95ci"} <= set(table.columns)  # fmt: skip
    assert "plotly" in report.read_text() and "Quality vs speed" in report.read_text()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["chosen"] in table["variant"].tolist()


def test_an_unbuilt_variant_is_one_clear_error(compressed):
    _, _, best_dir, _ = compressed
    with pytest.raises(HpoError, match="no variant 'bogus' built; run `hpo compress"):
        load_predictor(best_dir, "bogus")


def test_compress_mistakes_are_one_line(tmp_path, capsys, monkeypatch, tiny_study):
    from hpo.cli import main

    monkeypatch.chdir(tmp_path)
    url = tiny_study.copy_to(tmp_path)
    assert main(["compress", "no-such-study", "--storage", url]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-study" in err[0], err
    spec = [NAME, "--storage", url]
    assert main(["compress", *spec]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {'runs/tiny-ucc/best'}: no retrained model (metrics.json missing); run `hpo retrain tiny-ucc` first"
    ]
    assert main(["compress", *spec, "--alpha", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "error: hpo compress: distill.alpha: Input should be less than or equal to 1"
    )


def test_remeasuring_keeps_each_variants_thresholds_and_rewrites_the_report(compressed):
    spec, shared, best_dir, report = compressed
    before = {
        v: (variant_dir(best_dir, v) / "thresholds.json").read_text() for v in SETTINGS.variants
    }
    report.unlink()
    again = compress_study(spec, best_dir, shared.data_dir, SETTINGS, rebuild=False)
    assert (
        again.is_file()
        and {
            v: (variant_dir(best_dir, v) / "thresholds.json").read_text()
            for v in SETTINGS.variants
        }
        == before
    )


@pytest.mark.skipif(not HAS_ORT, reason=NO_ORT)
def test_onnx_int8_spends_its_matmul_time_in_int8_kernels(compressed):
    _, shared, best_dir, _ = compressed
    texts = pd.read_csv(shared.data_dir / "ucc" / "val.csv")["comment"].tolist()
    int8 = load_predictor(best_dir, "onnx-int8").kernel_seconds_by_operator(texts)
    fp32 = load_predictor(best_dir, "onnx").kernel_seconds_by_operator(texts)
    integer = {"DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QAttention", "MatMulInteger"}
    assert integer & set(int8) and not integer & set(fp32), (int8, fp32)
    assert all(s >= 0 for s in int8.values())
    # Residual + LayerNorm stays two kernels (the fused one is slower on CPU), in both graphs.
    for ops in (int8, fp32):
        assert "LayerNormalization" in ops and "SkipLayerNormalization" not in ops, ops
