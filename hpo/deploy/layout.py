"""Where variants live and what each directory says about itself (no torch).

runs/<study>/deploy/<variant>/ holds the model (safetensors or .onnx), the tokenizer,
labels.json, the thresholds re-tuned on validation for this variant, variant.json (how it was
made) and figures.json (what it scored and how fast it ran); runs/<study>/deploy/ holds the
report. Everything is JSON, safetensors or ONNX: nothing is unpickled to load a variant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from hpo.stored import JsonRecord
from trainers.checkpoint import BLEND_PREFIXES

DEPLOY_DIR = "deploy"
Format = Literal["transformers", "int8", "pruned", "onnx"]
WEIGHT_SUFFIXES = (".safetensors", ".onnx", ".onnx.data")


class Record(JsonRecord):
    WRITER: ClassVar[str] = "hpo compress"


class VariantRecord(Record):
    """How a variant was made: its format (how to load it), its parameter count, and the
    builder's details (what pruning removed, the student's layers, the distillation settings)."""

    variant: str
    format: Format
    parameters: int
    details: dict[str, Any] = {}

    FILENAME: ClassVar[str] = "variant.json"


class VariantFigures(Record):
    """What a variant scored (validation with its own thresholds; test once) and its CPU speed."""

    variant: str
    size_mb: float
    parameters: int
    texts_per_s_batch1: float
    texts_per_s_batch64: float
    latency_p50_ms: float
    latency_p95_ms: float
    val: dict[str, float | None]
    test: dict[str, float | None]
    val_intervals: dict[str, list[float | None]]
    test_intervals: dict[str, list[float | None]]
    thresholds: dict[str, float] | None

    FILENAME: ClassVar[str] = "figures.json"


def deploy_root(best_dir: Path) -> Path:
    """runs/<study>/deploy, beside runs/<study>/best."""
    return Path(best_dir).parent / DEPLOY_DIR


def variant_dir(best_dir: Path, variant: str) -> Path:
    return deploy_root(best_dir) / variant


def size_on_disk_mb(directory: Path) -> float:
    """What prediction loads besides the tokenizer: weight files (and hand-made features' and
    the blend's side models)."""
    files = [
        f
        for f in Path(directory).rglob("*")
        if f.is_file()
        and (f.name.endswith(WEIGHT_SUFFIXES) or f.name.startswith(("features.", *BLEND_PREFIXES)))
    ]
    return sum(f.stat().st_size for f in files) / 2**20
