"""Everything a study needs, read once before its first trial: every split, the model's config
and the trainer, so a wrong column or a missing model is one line now instead of n failed
trials later."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hpo import stored
from hpo.spec import StudySpec
from trainers.profile import DataProfile


@dataclass(frozen=True)
class DataFacts:
    """What preflight learnt of the data: rows per split, each label's share of train."""

    rows: dict[str, int] = field(default_factory=dict)
    train_prevalence: dict[str, float] = field(default_factory=dict)
    profile: DataProfile | None = None  # hpo.study.profile, when computed

    def as_attrs(self) -> dict[str, object]:
        """The study user attributes that hold these facts."""
        attrs: dict[str, object] = {f"{stored.ROWS_PREFIX}{split}": n for split, n in self.rows.items()}
        if self.train_prevalence:
            attrs[stored.TRAIN_PREVALENCE] = self.train_prevalence
        if self.profile is not None:
            attrs[stored.DATA_PROFILE] = stored.json_safe(self.profile.model_dump(mode="json"))
        return attrs


def preflight(spec: StudySpec, data_dir: Path) -> DataFacts:
    from hpo.trial.process import load_trainer
    from trainers.data import load_split
    from trainers.model import load_model_config

    data = spec.data_config(data_dir)
    rows: dict[str, int] = {}
    prevalence: dict[str, float] = {}
    for name, path in (("train", data.train_path), ("val", data.val_path), ("test", data.test_path)):
        if path is None:
            continue
        split = load_split(path, data, spec.task)
        rows[name] = len(split.texts)
        if name == "train":
            prevalence = _prevalence(spec, split.labels)
    load_model_config(spec.model)
    load_trainer(spec.trainer)
    return DataFacts(rows, prevalence)


def _prevalence(spec: StudySpec, labels) -> dict[str, float]:
    import numpy as np

    names = spec.data.label_columns or spec.data.class_names or []
    shares = labels.mean(axis=0) if spec.task == "multi_label" else np.bincount(labels, minlength=len(names)) / len(labels)
    return {n: round(float(s), 4) for n, s in zip(names, shares, strict=True)}
