"""Everything a study needs, read once before its first trial: every split, the model's config
and the trainer's source, so a wrong column or a missing model is one line now instead of n
failed trials later. What cannot work is refused (HpoError); what merely looks wrong is a
warning that `hpo check` prints and the study note keeps. Nothing here runs the trainer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec
from hpo.study import datacheck

if TYPE_CHECKING:  # pandas behind it: a joining worker checks no data
    from trainers.profile import DataProfile

BOUND_SPLITS = ("train", "val")  # what every trial is trained and scored on


@dataclass(frozen=True)
class DataFile:
    """One split as the study read it: where, how many rows it trains or scores, its content hash."""

    path: str
    rows: int
    sha256: str


@dataclass(frozen=True)
class DataFacts:
    """What preflight learnt of the data: rows and content of each split, each label's share of
    train, and warnings about what looks wrong but can run."""

    rows: dict[str, int] = field(default_factory=dict)
    train_prevalence: dict[str, float] = field(default_factory=dict)
    files: dict[str, DataFile] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    profile: DataProfile | None = None  # hpo.study.profile, when computed

    def as_attrs(self) -> dict[str, object]:
        """The study user attributes that hold these facts."""
        attrs: dict[str, object] = {
            f"{stored.ROWS_PREFIX}{split}": n for split, n in self.rows.items()
        }
        if self.train_prevalence:
            attrs[stored.TRAIN_PREVALENCE] = self.train_prevalence
        if self.files:
            attrs[stored.DATA_FINGERPRINT] = {split: asdict(f) for split, f in self.files.items()}
        attrs[stored.PREFLIGHT_WARNINGS] = list(self.warnings)
        if self.profile is not None:
            attrs[stored.DATA_PROFILE] = stored.json_safe(self.profile.model_dump(mode="json"))
        return attrs


def preflight(spec: StudySpec, data_dir: Path) -> DataFacts:
    from hpo.trial.locate import find_trainer

    facts = read_data(spec, data_dir)
    check_model(spec)
    check_blend_encoder(spec)
    trainer = find_trainer(spec.trainer)
    return (
        facts
        if trainer.warning is None
        else DataFacts(
            facts.rows, facts.train_prevalence, facts.files, [*facts.warnings, trainer.warning]
        )
    )


def read_data(spec: StudySpec, data_dir: Path) -> DataFacts:
    """Read every split as the trials will; refuse what cannot work, collect warnings."""
    from trainers.config import SplitPart
    from trainers.data import load_split
    from trainers.manifest import sha256_of

    data = spec.data_config(data_dir)
    rows: dict[str, int] = {}
    files: dict[str, DataFile] = {}
    warnings: list[str] = []
    prevalence: dict[str, float] = {}
    for name, path in (
        ("train", data.train_path),
        ("val", data.val_path),
        ("test", data.test_path),
    ):
        if path is None:
            continue
        split = load_split(path, data, spec.task)
        rows[name] = len(split.texts)
        warnings += datacheck.check_rows(spec, name, str(path), rows[name], split.n_dropped_empty)
        warnings += datacheck.check_labels(spec, name, str(path), split.labels)
        file = path.file if isinstance(path, SplitPart) else path  # a part of one split file
        where = str(path) if isinstance(path, SplitPart) else str(path.resolve())
        files[name] = DataFile(where, rows[name], sha256_of(file))
        if name == "train":
            prevalence = _prevalence(spec, split.labels)
    for other, what in (
        ("val", "validation scores would measure training fit"),
        ("test", "test figures would not be held out"),
    ):
        if (
            other in files and data.split is None
        ):  # the parts of one split file are disjoint by construction
            warnings += datacheck.check_overlap(
                files["train"].path,
                files[other].path,
                files["train"].sha256,
                files[other].sha256,
                what,
            )
    return DataFacts(rows, prevalence, files, warnings)


def check_model(spec: StudySpec) -> None:
    """The model's config exists (read without weights) and its positions fit model.max_length."""
    from trainers.errors import TrainerError
    from trainers.model import load_model_config, position_limit

    try:
        config = load_model_config(spec.model)
    except TrainerError:
        raise
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise HpoError(
            f"model {spec.model.name_or_path!r}: its config cannot be read ({reason}); fix model.name_or_path or model.from_config"
        ) from None
    limit = position_limit(config)
    if limit is not None and spec.model.max_length > limit:
        raise HpoError(
            f"model.max_length {spec.model.max_length} is above the {limit} positions {config.model_type} "
            f"{spec.model.name_or_path!r} can read; set model.max_length to at most {limit}"
        )


def check_blend_encoder(spec: StudySpec) -> None:
    """The blend's sentence encoder is there now, not only when `hpo retrain` needs it after
    the whole study (the packaged MPNet is an optional extra)."""
    from trainers.config import ModelConfig
    from trainers.errors import TrainerError
    from trainers.model import load_model_config

    if spec.blend is None or not spec.blend.uses_encoder:
        return
    try:
        load_model_config(ModelConfig(name_or_path=spec.blend.encoder))
    except TrainerError as e:
        raise HpoError(f"blend.encoder {spec.blend.encoder!r}: {e}") from None


def changed_splits(recorded: dict | None, facts: DataFacts) -> list[str]:
    """The bound splits whose rows or content differ from what the study recorded."""
    if not recorded:
        return []
    changed = []
    for split in BOUND_SPLITS:
        old, new = recorded.get(split), facts.files.get(split)
        if old is None or new is None:
            continue
        if old.get("sha256") != new.sha256 or old.get("rows") != new.rows:
            changed.append(
                f"{split} ({old.get('path')}, {old.get('rows')} rows → {new.path}, {new.rows} rows)"
            )
    return changed


def _prevalence(spec: StudySpec, labels) -> dict[str, float]:
    import numpy as np

    names = spec.data.label_columns or spec.data.class_names or []
    shares = (
        labels.mean(axis=0)
        if spec.task == "multi_label"
        else np.bincount(labels, minlength=len(names)) / len(labels)
    )
    return {n: round(float(s), 4) for n, s in zip(names, shares, strict=True)}
