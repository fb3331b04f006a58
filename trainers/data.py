"""Labelled text from CSV files: any of UTF-8, UTF-8 with a byte-order mark, Latin-1.

Needs pandas only (no torch), so a study checks its data before it starts a trial.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainers.config import DataConfig, Task
from trainers.errors import DataError

log = logging.getLogger(__name__)

ENCODINGS = ("utf-8-sig", "latin-1")  # latin-1 decodes any byte: it must come last


@dataclass(frozen=True)
class LabelledSplit:
    texts: list[str]
    labels: np.ndarray  # multi-label: float32 (n, L) of 0/1; multi-class: int64 (n,)
    n_dropped_empty: int = 0


def read_csv(path: Path, encoding: str = "auto") -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: file not found; check data.dir / DATA_DIR")
    for enc in ENCODINGS if encoding == "auto" else (encoding,):
        try:
            return pd.read_csv(path, encoding=enc, keep_default_na=False, dtype=str)
        except UnicodeDecodeError:
            continue
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path}: not a readable CSV ({e})") from e
    raise DataError(f"{path}: cannot be decoded as {encoding}; set data.encoding")


def load_split(path: Path, data: DataConfig, task: Task) -> LabelledSplit:
    frame = read_csv(path, data.encoding)
    needed = [data.text_column, *(data.label_columns or ()), *([data.label_column] if data.label_column else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; columns are {list(frame.columns)}")
    texts = frame[data.text_column].str.strip()
    keep = texts != ""
    n_dropped = int((~keep).sum())
    if n_dropped:
        log.warning("%s: dropped %d row(s) with empty text", path, n_dropped)
    frame = frame[keep]
    labels = _multi_label(frame, data, path) if task == "multi_label" else _multi_class(frame, data, path)
    return LabelledSplit(texts=texts[keep].tolist(), labels=labels, n_dropped_empty=n_dropped)


def _multi_label(frame: pd.DataFrame, data: DataConfig, path: Path) -> np.ndarray:
    columns = []
    for name in data.label_columns or ():
        values = pd.to_numeric(frame[name].str.strip(), errors="coerce")
        bad = ~values.isin([0.0, 1.0])
        if bad.any():
            example = frame[name][bad].iloc[0]
            raise DataError(f"{path}: label column {name!r} must hold 0/1, but has {example!r} ({int(bad.sum())} rows)")
        columns.append(values.to_numpy(np.float32))
    return np.stack(columns, axis=1)


def _multi_class(frame: pd.DataFrame, data: DataConfig, path: Path) -> np.ndarray:
    names = list(data.class_names or ())
    values = frame[data.label_column].str.strip()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(f"{path}: column {data.label_column!r} has value(s) {unknown[:5]} not in data.class_names {names}")
    return values.map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
