"""The retrained best model on disk: everything `hpo predict` needs, in one directory.

Hugging Face format (safetensors weights and config via `save_pretrained`, tokenizer; a fusion
model adds its head files, see trainers.fusion) plus `labels.json` (task, label
names, text column, max length), `thresholds.json` (multi-label: per-label thresholds chosen on
validation) and, for a model that uses hand-made features, the fitted `features.joblib`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from transformers import AutoTokenizer

from trainers.config import Task
from trainers.errors import TrainerError
from trainers.fusion import load_model

if TYPE_CHECKING:  # the features' lexicon packages load only for a model that uses them
    from trainers.features import TextFeatureExtractor

LABELS_FILE = "labels.json"
THRESHOLDS_FILE = "thresholds.json"
FEATURES_FILE = "features.joblib"  # written by TextFeatureExtractor.save


@dataclass(frozen=True)
class LabelInfo:
    """What the model predicts and how its input was prepared at training time."""

    task: Task
    names: tuple[str, ...]
    text_column: str = "text"
    max_length: int = 128


class BestModel(NamedTuple):
    model: object
    tokenizer: object
    labels: LabelInfo
    thresholds: np.ndarray | None  # None for multi-class (argmax)
    extractor: TextFeatureExtractor | None


def save_best(
    directory: str | Path,
    model,
    tokenizer,
    labels: LabelInfo,
    thresholds: np.ndarray | None = None,
    extractor: TextFeatureExtractor | None = None,
) -> Path:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # transformers 5 writes safetensors only
    tokenizer.save_pretrained(out)
    (out / LABELS_FILE).write_text(json.dumps(asdict(labels), indent=2))
    if thresholds is not None:
        if len(thresholds) != len(labels.names):
            raise TrainerError(f"{len(thresholds)} thresholds for {len(labels.names)} labels")
        table = {name: float(t) for name, t in zip(labels.names, thresholds, strict=True)}
        (out / THRESHOLDS_FILE).write_text(json.dumps(table, indent=2))
    if extractor is not None:
        extractor.save(out)
    return out


def load_best(directory: str | Path, device: str | None = None) -> BestModel:
    """Reload what `save_best` wrote; the model comes back in eval mode."""
    path = Path(directory)
    if not (path / LABELS_FILE).is_file():
        raise TrainerError(f"{path}: not a saved model ({LABELS_FILE} missing); run `hpo retrain <study>` first")
    raw = json.loads((path / LABELS_FILE).read_text())
    labels = LabelInfo(**{**raw, "names": tuple(raw["names"])})
    model = load_model(path)
    if device is not None:
        model = model.to(device)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return BestModel(model, tokenizer, labels, load_thresholds(path, labels.names), _load_extractor(path))


def load_thresholds(directory: Path, names: tuple[str, ...]) -> np.ndarray | None:
    file = directory / THRESHOLDS_FILE
    if not file.is_file():
        return None
    table = json.loads(file.read_text())
    missing = [n for n in names if n not in table]
    if missing:
        raise TrainerError(f"{file}: no threshold for label(s) {missing}")
    return np.array([table[n] for n in names], dtype=np.float64)


def _load_extractor(directory: Path) -> TextFeatureExtractor | None:
    if not (directory / FEATURES_FILE).is_file():
        return None
    from trainers.features import TextFeatureExtractor

    return TextFeatureExtractor.load(directory)


def weights_size_mb(directory: str | Path) -> float:
    """Size on disk of what prediction loads besides the tokenizer: weights and features."""
    files = [*Path(directory).rglob("*.safetensors"), *Path(directory).glob(FEATURES_FILE)]
    return sum(f.stat().st_size for f in files) / 2**20
