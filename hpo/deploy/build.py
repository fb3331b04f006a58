"""One builder per variant: each writes runs/<study>/deploy/<variant>/ from the fp32 model and
returns the variant's record (thresholds and figures come after, from hpo.deploy.measure)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hpo.deploy.layout import VariantRecord, variant_dir
from hpo.deploy.settings import CompressSpec
from hpo.deploy.support import Source, copy_shared_files, fresh_dir
from hpo.errors import HpoError


def build_variant(
    variant: str, source: Source, target: Path, settings: CompressSpec
) -> VariantRecord:
    fresh_dir(target)
    if variant == "int8":
        record = build_int8(source, target)
    elif variant in ("onnx", "onnx-int8"):
        record = build_onnx(source.best_dir, target, variant)
    elif variant == "distilled-onnx-int8":
        student = variant_dir(source.best_dir, "distilled")
        if not (student / VariantRecord.FILENAME).is_file():
            raise HpoError(
                f"{variant} is made from the distilled variant: build `distilled` first (--variants distilled,{variant})"
            )
        record = build_onnx(student, target, variant)
    elif variant == "pruned":
        from hpo.deploy.prune import build_pruned

        record = build_pruned(source, target, settings.prune)
    else:
        from hpo.deploy.distill import build_distilled

        record = build_distilled(source, target, settings.distill)
    record.write(target)
    return record


def build_int8(source: Source, target: Path) -> VariantRecord:
    """PyTorch dynamic quantisation of every Linear layer (int8 weights per output channel)."""
    from trainers.checkpoint import load_best
    from trainers.quantize import quantize_int8, save_int8
    from trainers.shrink import parameter_count

    best = load_best(source.best_dir, device="cpu")
    save_int8(quantize_int8(best.model), best.model, target)
    copy_shared_files(source.best_dir, target)
    details = {
        "scheme": "torch dynamic quantisation, nn.Linear → int8 per output channel, activations per batch",
        "engine": _engine(),
    }
    return VariantRecord(
        variant="int8", format="int8", parameters=parameter_count(best.model), details=details
    )


def build_onnx(model_dir: Path, target: Path, variant: str) -> VariantRecord:
    """ONNX export (fp32) of the model in `model_dir` (the fp32 model, or the distilled student),
    and for the *-int8 variants its ONNX Runtime dynamic int8 quantisation."""
    from hpo.deploy.onnx import MODEL_FILE, export_onnx, quantize_onnx
    from trainers.checkpoint import load_best
    from trainers.shrink import parameter_count

    quantized = variant.endswith("-int8")
    best = load_best(model_dir, device="cpu")
    n_features = best.extractor.n_features if best.extractor is not None else 0
    if quantized:
        with tempfile.TemporaryDirectory() as tmp:
            exported, fused = export_onnx(best.model, Path(tmp), n_features)
            quantize_onnx(exported, target / MODEL_FILE)
    else:
        _, fused = export_onnx(best.model, target, n_features)
    copy_shared_files(model_dir, target)
    scheme = (
        "onnxruntime dynamic quantisation, MatMul weights → int8 per channel"
        if quantized
        else "fp32"
    )
    details = {
        "exporter": "torch.onnx (TorchScript-based, dynamo=False), opset 17, dynamic batch and sequence axes",
        "scheme": scheme,
        "fused": fused or "none",
        "model": "the distilled student" if variant.startswith("distilled") else "the fp32 model",
    }
    return VariantRecord(
        variant=variant, format="onnx", parameters=parameter_count(best.model), details=details
    )


def _engine() -> str:
    import torch

    return torch.backends.quantized.engine
