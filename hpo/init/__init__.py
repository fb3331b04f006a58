"""`hpo init DATA`: a study spec proposed from a CSV (or a folder of train/val/test CSVs).

It reads the data once, detects the text column and the labels (hpo.init.detect), sizes the
proposal by the texts' token lengths and writes studies/<name>.yaml with a comment on every
choice (hpo.init.write). The CLI then runs the same checks as `hpo check`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import ValidationError

from hpo.init.detect import Detected, detect
from hpo.init.source import DataSource, InitError, read_source
from hpo.init.write import DataPlace, Shape, spec_yaml
from trainers.config import SplitConfig, Task

__all__ = ["InitError", "init_study"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def init_study(
    data: str | Path,
    data_dir: Path,
    studies_dir: Path,
    *,
    name: str | None = None,
    task: Task | None = None,
    text_column: str | None = None,
    labels: list[str] | None = None,
    force: bool = False,
) -> Path:
    """Write studies_dir/<name>.yaml for the data at `data`; returns its path."""
    from hpo.spec import StudySpec

    source = read_source(data)
    found = detect(source.frame, task, text_column, labels)
    name = name or default_name(source)
    if not NAME.fullmatch(name):
        raise InitError(
            f"--name {name!r}: a study name is letters, digits and _.- (starting with a letter or digit)"
        )
    path = Path(studies_dir) / f"{name}.yaml"
    if path.exists() and not force:
        raise InitError(f"{path} exists; choose another --name, or --force to overwrite it")
    split = SplitConfig() if source.single else None
    text = spec_yaml(
        name,
        source,
        data_place(source.folder, data_dir),
        found,
        shape(source, found, split),
        split,
    )
    try:
        StudySpec.model_validate(yaml.safe_load(text))
    except ValidationError as e:  # a bug here, not the user's: say so before writing anything
        raise InitError(
            f"hpo init proposed a spec that does not validate ({e.errors()[0]['msg']}); please report it"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def default_name(source: DataSource) -> str:
    stem = Path(source.files[0]).stem if source.single else source.folder.resolve().name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-._") or "study"


def data_place(folder: Path, data_dir: Path) -> DataPlace:
    """Relative to DATA_DIR when the data lies under it (the spec then moves with DATA_DIR),
    else absolute."""
    root, here = Path(data_dir).resolve(), Path(folder).resolve()
    if here.is_relative_to(root):
        return DataPlace(str(here.relative_to(root)) or ".", f"under DATA_DIR ({data_dir})")
    return DataPlace(str(here), f"absolute: the data is outside DATA_DIR ({data_dir})")


def shape(source: DataSource, found: Detected, split: SplitConfig | None) -> Shape:
    """Token lengths of every text (the packaged MiniLM's tokenizer), training rows, label shares."""
    from trainers.config import ModelConfig
    from trainers.model import load_tokenizer
    from trainers.profile import token_lengths

    texts = source.frame[found.text_column].astype(str).str.strip()
    texts = texts[texts != ""]
    lengths = token_lengths(texts.tolist(), load_tokenizer(ModelConfig()))
    train_rows = round(len(texts) * (1 - split.val - split.test)) if split else source.rows[0]
    return Shape(lengths=lengths, train_rows=train_rows, shares=label_shares(source.frame, found))


def label_shares(frame: pd.DataFrame, found: Detected) -> dict[str, float]:
    if found.task == "multi_label":
        return {
            c: float(pd.to_numeric(frame[c].str.strip()).mean()) for c in found.label_columns or []
        }
    counts = frame[found.label_column].str.strip().value_counts(normalize=True)
    return {str(k): float(v) for k, v in counts.items() if not np.isnan(v)}
