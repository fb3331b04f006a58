"""Any model directory as a predictor: texts in, probabilities out, with the labels and the
validation-chosen thresholds `hpo predict` applies.

runs/<study>/best (no variant.json) and the `transformers` variants load with
trainers.checkpoint.load_best; `int8` and `pruned` rebuild their architecture first; `onnx`
variants run in ONNX Runtime, tokenised with the `tokenizers` library, and import no torch,
so `hpo predict` on them starts in a fraction of the time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hpo.deploy.layout import VariantRecord, variant_dir
from hpo.errors import HpoError

LABELS_FILE, THRESHOLDS_FILE = (
    "labels.json",
    "thresholds.json",
)  # as trainers.checkpoint writes them


@dataclass(frozen=True)
class Labels:
    """labels.json: what the model predicts and how its input was prepared at training time."""

    task: str
    names: tuple[str, ...]
    text_column: str
    max_length: int

    @classmethod
    def read(cls, directory: Path) -> Labels:
        path = Path(directory) / LABELS_FILE
        if not path.is_file():
            raise HpoError(
                f"{directory}: not a saved model ({LABELS_FILE} missing); run `hpo retrain <study>` (and `hpo compress`) first"
            )
        raw = _read_json(path)
        try:
            return cls(
                raw["task"],
                tuple(raw["names"]),
                raw.get("text_column", "text"),
                int(raw.get("max_length", 128)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise HpoError(
                f"{path}: not a model's labels ({type(e).__name__}: {e}); run `hpo compress` again"
            ) from None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as e:
        raise HpoError(f"{path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # not UTF-8, not JSON
        raise HpoError(f"{path}: not valid JSON ({e}); run `hpo compress` again") from None


class Predictor(Protocol):
    labels: Labels
    thresholds: np.ndarray | None

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray: ...


def read_thresholds(directory: Path, names: tuple[str, ...]) -> np.ndarray | None:
    path = Path(directory) / THRESHOLDS_FILE
    if not path.is_file():
        return None
    table = _read_json(path)
    if not isinstance(table, dict):
        raise HpoError(f"{path}: not a table of thresholds by label; run `hpo compress` again")
    missing = [n for n in names if n not in table]
    if missing:
        raise HpoError(f"{path}: no threshold for label(s) {missing}")
    return np.array([table[n] for n in names], dtype=np.float64)


def resolve(model_dir: str | Path, variant: str | None = None) -> Path:
    """`model_dir` itself, or with --variant the variant built beside it (runs/<study>/deploy/<v>)."""
    path = Path(model_dir)
    if variant is None or variant == "fp32":
        return path
    target = variant_dir(path, variant)
    if not target.is_dir():
        built = (
            sorted(
                p.name for p in target.parent.iterdir() if (p / VariantRecord.FILENAME).is_file()
            )
            if target.parent.is_dir()
            else []
        )
        raise HpoError(
            f"{target}: no variant {variant!r} built; run `hpo compress <study>` (built: {', '.join(built) or 'none'})"
        )
    return target


def load_predictor(
    model_dir: str | Path, variant: str | None = None, quiet: bool = False
) -> Predictor:
    """The model in `model_dir` (or its `variant`) behind one `probabilities(texts)` call.
    `quiet`: no Hugging Face progress bars (stderr is for problems, one line each); an ONNX
    variant imports neither transformers nor torch, so a command line starts fast."""
    path = resolve(model_dir, variant)
    record = VariantRecord.read(path)
    fmt = record.format if record else "transformers"
    if quiet and fmt != "onnx":
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if fmt == "transformers":  # labels.json is a model card with hashes: load_best checks it
        return TorchPredictor(path, None, fmt)
    labels = Labels.read(path)
    if fmt == "onnx":
        return OnnxPredictor(path, labels)
    return TorchPredictor(path, labels, fmt)


class TorchPredictor:
    """A PyTorch model on the best available device (int8: CPU, its only kernels)."""

    def __init__(self, directory: Path, labels: Labels | None, fmt: str) -> None:
        from trainers.checkpoint import BestModel, LabelInfo, load_best
        from trainers.loop import pick_device

        if fmt == "transformers":
            # Verified files only; a variant's re-tuned thresholds are written after its card.
            best = load_best(directory, device=str(pick_device("auto")))
            info = best.labels
            self.labels = Labels(info.task, info.names, info.text_column, info.max_length)
            self.thresholds = (
                best.thresholds
                if best.thresholds is not None
                else read_thresholds(directory, info.names)
            )
            self.best = best._replace(thresholds=self.thresholds)
            return
        assert labels is not None
        from transformers import AutoTokenizer

        self.labels = labels
        self.thresholds = read_thresholds(directory, labels.names)

        model = _load_int8(directory) if fmt == "int8" else _load_pruned(directory)
        info = LabelInfo(labels.task, labels.names, labels.text_column, labels.max_length)  # type: ignore[arg-type]
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        self.best = BestModel(
            model,
            tokenizer,
            info,
            self.thresholds,
            _load_extractor(directory),
            _load_blend(directory),
        )

    @property
    def model(self) -> Any:
        return self.best.model

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        from trainers.evaluate import predict_probabilities

        return predict_probabilities(self.best, texts, batch_size)[0]


class OnnxPredictor:
    """An ONNX Runtime session; length-sorted batches padded to their longest text."""

    def __init__(self, directory: Path, labels: Labels) -> None:
        from tokenizers import Tokenizer

        from hpo.deploy.onnx import MODEL_FILE, session

        self.directory = Path(directory)
        self.labels = labels
        self.thresholds = read_thresholds(directory, labels.names)
        self.session = session(directory / MODEL_FILE)
        self.tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(labels.max_length)
        self.pad_id = _pad_id(directory, self.tokenizer)
        self.extractor = _load_extractor(directory)
        self.blend = _load_blend(directory)
        self.takes_features = any(i.name == "features" for i in self.session.get_inputs())

    def probabilities(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._probabilities_on(self.session, texts, batch_size)

    def kernel_seconds_by_operator(
        self, texts: Sequence[str], batch_size: int = 64
    ) -> dict[str, float]:
        """ONNX Runtime's profiler over one pass on `texts`, in a profiling session of its own:
        kernel seconds per operator type, largest first (where the time goes: int8 MatMuls,
        attention, normalisation...)."""
        import collections
        import tempfile

        from hpo.deploy.onnx import MODEL_FILE, session

        with tempfile.TemporaryDirectory(prefix="onnx-profile-") as tmp:
            profiled = session(self.directory / MODEL_FILE, profile_prefix=Path(tmp) / "ops")
            self._probabilities_on(profiled, texts, batch_size)
            events = json.loads(Path(profiled.end_profiling()).read_text())
        by_op: collections.Counter[str] = collections.Counter()
        for event in events:
            if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
                by_op[event["args"]["op_name"]] += event["dur"] / 1e6
        return dict(by_op.most_common())

    def _probabilities_on(self, session, texts: Sequence[str], batch_size: int) -> np.ndarray:
        texts = list(texts)
        ids = [e.ids for e in self.tokenizer.encode_batch(texts)]
        features = (
            self.extractor.transform(texts).astype(np.float32) if self.takes_features else None
        )
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(ids), len(self.labels.names)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            inputs = _padded([ids[r] for r in rows], self.pad_id)
            if features is not None:
                inputs["features"] = features[rows]
            out[rows] = session.run(["logits"], inputs)[0]
        probs = _probabilities(out, self.labels.task)
        return self.blend.mix(probs, texts) if self.blend is not None else probs


def _padded(ids: list[list[int]], pad_id: int) -> dict[str, np.ndarray]:
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)], mask[row, : len(x)] = x, 1
    return {"input_ids": input_ids, "attention_mask": mask}


def _probabilities(logits: np.ndarray, task: str) -> np.ndarray:
    """As trainers.model.probabilities: sigmoid per label, or softmax over the classes."""
    if task == "multi_label":
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


def _pad_id(directory: Path, tokenizer) -> int:
    config = directory / "tokenizer_config.json"
    token = (
        json.loads(config.read_text()).get("pad_token", "[PAD]") if config.is_file() else "[PAD]"
    )
    token = token.get("content") if isinstance(token, dict) else token
    found = tokenizer.token_to_id(token)
    return 0 if found is None else int(found)


def _load_extractor(directory: Path):
    """The fitted hand-made features saved beside the model (`features.*`), if the model uses them."""
    if not any(Path(directory).glob("features.*")):
        return None
    from trainers.features import TextFeatureExtractor

    return TextFeatureExtractor.load(directory)


def _load_blend(directory: Path):
    """The side models mixed into the probabilities (copied from the fp32 model), if any;
    scikit-learn is imported only for a model blended with n-grams."""
    from trainers.blend import Blend

    return Blend.load(directory)


def _load_int8(directory: Path):
    from trainers.quantize import load_int8

    return load_int8(directory)


def _load_pruned(directory: Path):
    from hpo.deploy.prune import load_pruned

    return load_pruned(directory)
