"""The retrained best model on disk: everything `hpo predict` needs, in one directory.

Hugging Face format (safetensors weights and config via `save_pretrained`, tokenizer; a fusion
model adds its head files, see trainers.fusion) plus `labels.json` (task, label names, text
column, max length, whether the model uses hand-made features, and the sha256 of every other
file of the model), `thresholds.json` (multi-label: per-label thresholds chosen on validation)
and, for a model that uses hand-made features, their fitted statistics in `features.json`; a
model blended with side models adds their files (trainers.blend).

Everything is data: loading reads only the files labels.json lists, after checking their
hashes (trainers.manifest), and never unpickles anything.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainers.config import Task, TrainConfig
from trainers.errors import TrainerError
from trainers.manifest import file_hashes, move_into, stage_verified

if TYPE_CHECKING:  # the features' lexicon packages load only for a model that uses them
    from trainers.blend import Blend
    from trainers.features import TextFeatureExtractor

LABELS_FILE = "labels.json"
THRESHOLDS_FILE = "thresholds.json"
RUN_FILE = (
    "run.json"  # beside a model saved at the end of its run: how it was trained, how it scored
)
# The cards of the side models a delivered model is blended with (trainers.blend), by kind, as
# trainers.ngram and trainers.embeddings write them (neither is imported here: scikit-learn,
# torch); every file of a side model starts with its card's stem.
NGRAM_FILE = "ngram.json"
EMBEDDINGS_FILE = "embeddings.json"
NGRAMS, EMBEDDINGS = "ngrams", "embeddings"  # the side models' kinds, as `blend.models` names them
BLEND_FILES = {NGRAMS: NGRAM_FILE, EMBEDDINGS: EMBEDDINGS_FILE}
BLEND_PREFIXES = tuple(card.removesuffix("json") for card in BLEND_FILES.values())
FEATURES_FILE = "features.json"  # written by TextFeatureExtractor.save (trainers.features, not imported here: its lexicons load slowly)


@dataclass(frozen=True)
class LabelInfo:
    """What the model predicts and how its input was prepared at training time."""

    task: Task
    names: tuple[str, ...]
    text_column: str = "text"
    max_length: int = 128

    @classmethod
    def of(cls, config: TrainConfig) -> LabelInfo:
        d = config.data
        return cls(config.task, d.label_names, d.text_column, config.model.max_length)


class ModelCard(BaseModel):
    """labels.json: the labels, whether feature state belongs to the model, and its files' hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    names: tuple[str, ...] = Field(min_length=1)
    text_column: str
    max_length: int = Field(ge=1)
    features: bool
    files: dict[str, str] = Field(
        min_length=1,
        description="every file of the model but labels.json: relative path -> sha256",
    )

    @field_validator("names")
    @classmethod
    def _distinct(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(names)) != len(names):
            raise ValueError(f"label names repeat: {list(names)}")
        return names

    @property
    def labels(self) -> LabelInfo:
        return LabelInfo(self.task, self.names, self.text_column, self.max_length)


class BestModel(NamedTuple):
    model: object
    tokenizer: object
    labels: LabelInfo
    thresholds: np.ndarray | None  # None for multi-class (argmax)
    extractor: TextFeatureExtractor | None
    blend: Blend | None = None  # side models mixed into the model's probabilities (trainers.blend)


def save_best(
    directory: str | Path,
    model,
    tokenizer,
    labels: LabelInfo,
    thresholds: np.ndarray | None = None,
    extractor: TextFeatureExtractor | None = None,
    blend: Blend | None = None,
) -> Path:
    """Write the model's files into a fresh folder, hash them, then move them into `directory`
    with labels.json last: files left there from an earlier model are not in the new list, so
    they are never loaded."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    if thresholds is not None and len(thresholds) != len(labels.names):
        raise TrainerError(f"{len(thresholds)} thresholds for {len(labels.names)} labels")
    with tempfile.TemporaryDirectory(prefix=".saving-", dir=out) as tmp:
        staging = Path(tmp)
        model.save_pretrained(staging)  # transformers 5 writes safetensors only
        tokenizer.save_pretrained(staging)
        if thresholds is not None:
            table = {name: float(t) for name, t in zip(labels.names, thresholds, strict=True)}
            (staging / THRESHOLDS_FILE).write_text(json.dumps(table, indent=2))
        if extractor is not None:
            extractor.save(staging)
        if blend is not None:
            blend.save(staging)
        card = ModelCard(
            **asdict(labels), features=extractor is not None, files=file_hashes(staging)
        )
        move_into(staging, out)
    (out / LABELS_FILE).write_text(card.model_dump_json(indent=2))
    return out


def read_card(directory: str | Path) -> ModelCard:
    """labels.json of a saved model, validated; one line naming the file when it is not one."""
    path = Path(directory) / LABELS_FILE
    if not path.is_file():
        raise TrainerError(
            f"{path.parent}: not a saved model ({LABELS_FILE} missing); run `hpo retrain <study>` first"
        )
    try:
        raw = json.loads(path.read_bytes())
    except OSError as e:
        raise TrainerError(f"{path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:  # not UTF-8, not JSON
        raise TrainerError(
            f"{path}: not valid JSON ({e}); copy the model directory again or retrain"
        ) from None
    if isinstance(raw, dict) and "files" not in raw and "names" in raw:
        raise TrainerError(
            f"{path}: lists no file hashes (an older model directory); retrain it with `hpo retrain`"
        )
    try:
        return ModelCard.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise TrainerError(
            f"{path}: {where + ': ' if where else ''}{err['msg'].removeprefix('Value error, ')}; copy the model directory again or retrain"
        ) from None


class SavedRun(BaseModel):
    """run.json: the configuration a saved model was trained with (where it was saved left out,
    so a copy compares equal), its best epoch and validation score, and that epoch's
    validation probabilities, so an ensemble is scored without predicting again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: TrainConfig
    best_epoch: int
    best_value: float
    val_probs: list[list[float]]

    @classmethod
    def read(cls, directory: Path) -> SavedRun | None:
        """The run saved in `directory`, or None when there is none or it cannot be read (a
        run killed while saving): such a member is trained again."""
        try:
            return cls.model_validate_json((Path(directory) / RUN_FILE).read_text())
        except (OSError, ValidationError):
            return None


def save_run(result, config: TrainConfig, extractor=None) -> Path:
    """Save a finished run's best model (trainers.loop.TrainResult with its model) into
    config.save_model_dir, then its run.json: run.json last marks the model complete."""
    out = Path(config.save_model_dir)
    (out / RUN_FILE).unlink(missing_ok=True)
    save_best(out, result.model, result.tokenizer, LabelInfo.of(config), extractor=extractor)
    run = SavedRun(
        config=config.model_copy(update={"save_model_dir": None}),
        best_epoch=result.best_epoch,
        best_value=result.best_value,
        val_probs=np.asarray(result.val_probs, dtype=float).tolist(),
    )
    (out / RUN_FILE).write_text(run.model_dump_json())
    return out


def load_best(directory: str | Path, device: str | None = None) -> BestModel:
    """Reload what `save_best` wrote, from verified copies of its listed files only; the model
    comes back in eval mode."""
    path = Path(directory)
    card = read_card(path)
    with tempfile.TemporaryDirectory(prefix="hpo-model-") as tmp:
        staged = stage_verified(path, card.files, Path(tmp))
        model, tokenizer = _load_weights(staged, path)
        _check_fits(model, card, path)
        thresholds = (
            load_thresholds(staged, card.names, path) if THRESHOLDS_FILE in card.files else None
        )
        extractor = _load_extractor(staged, path) if card.features else None
        blend = (
            _load_blend(staged, card, path)
            if set(BLEND_FILES.values()) & set(card.files)
            else None
        )
    if device is not None:
        model = model.to(device)
    return BestModel(model, tokenizer, card.labels, thresholds, extractor, blend)


def _load_weights(staged: Path, shown: Path):
    """Model and tokenizer from the verified copies: safetensors only, no code from the hub."""
    from transformers import AutoTokenizer

    from trainers.fusion import load_model

    try:
        model = load_model(staged)
        tokenizer = AutoTokenizer.from_pretrained(
            staged, local_files_only=True, trust_remote_code=False
        )
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrainerError(
            f"{shown}: the saved model cannot be loaded ({type(e).__name__}: {reason}); retrain it"
        ) from None
    return model, tokenizer


def _check_fits(model, card: ModelCard, shown: Path) -> None:
    """labels.json is not hashed (it holds the hashes): its labels and length must fit the weights."""
    from trainers.ensemble import members_of
    from trainers.model import position_limit

    model = members_of(model)[0]  # a seed ensemble's members share one architecture
    shape = getattr(model, "shape", None)  # a fusion model's head
    outputs = shape.num_labels if shape is not None else getattr(model.config, "num_labels", None)
    if outputs != len(card.names):
        raise TrainerError(
            f"{shown / LABELS_FILE}: names {len(card.names)} labels, but the model predicts {outputs}; copy the model directory again or retrain"
        )
    config = model.backbone.config if shape is not None else model.config
    limit = position_limit(config)
    if limit is not None and card.max_length > limit:
        raise TrainerError(
            f"{shown / LABELS_FILE}: max_length {card.max_length} is above the model's {limit} positions; copy the model directory again or retrain"
        )


def load_thresholds(
    directory: Path, names: tuple[str, ...], shown_as: Path | None = None
) -> np.ndarray | None:
    file, shown = directory / THRESHOLDS_FILE, Path(shown_as or directory) / THRESHOLDS_FILE
    if not file.is_file():
        return None
    try:
        table = json.loads(file.read_bytes())
    except ValueError as e:
        raise TrainerError(f"{shown}: not valid JSON ({e}); retrain the model") from None
    missing = [n for n in names if not isinstance(table, dict) or n not in table]
    if missing:
        raise TrainerError(f"{shown}: no threshold for label(s) {missing}")
    values = np.array(
        [
            table[n]
            if isinstance(table[n], (int, float)) and not isinstance(table[n], bool)
            else np.nan
            for n in names
        ]
    )
    if not np.all((values >= 0) & (values <= 1)):
        raise TrainerError(f"{shown}: thresholds must be numbers in [0, 1], got {table}")
    return values.astype(np.float64)


def _load_extractor(staged: Path, shown: Path) -> TextFeatureExtractor:
    from trainers.features import TextFeatureExtractor

    if not (staged / FEATURES_FILE).is_file():
        raise TrainerError(
            f"{shown}: labels.json says the model uses hand-made features, but lists no {FEATURES_FILE}; retrain it"
        )
    return TextFeatureExtractor.load(staged, shown_as=shown)


def _load_blend(staged: Path, card: ModelCard, shown: Path) -> Blend:
    from trainers.blend import Blend

    blend = Blend.load(staged, shown_as=shown)
    assert blend is not None  # the card lists a side model's file
    for kind, (model, _) in blend.parts.items():
        outputs = model.head.n_outputs
        if outputs != len(card.names) or model.task != card.task:
            raise TrainerError(
                f"{shown / BLEND_FILES[kind]}: its side model predicts {outputs} {model.task} outputs, labels.json {len(card.names)} {card.task}; copy the model directory again or retrain"
            )
    return blend


def weights_size_mb(directory: str | Path) -> float:
    """Size on disk of what prediction loads besides the tokenizer: weights, features and
    side models."""
    files = {
        *Path(directory).rglob("*.safetensors"),
        *Path(directory).glob(FEATURES_FILE),
        *(f for f in Path(directory).iterdir() if f.name.startswith(BLEND_PREFIXES)),
    }
    return sum(f.stat().st_size for f in files) / 2**20
