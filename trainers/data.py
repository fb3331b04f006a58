"""Labelled text from CSV files: any of UTF-8, UTF-8 with a byte-order mark, Latin-1.

Needs pandas only (no torch), so a study checks its data before it starts a trial.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainers.config import DataConfig, SplitPart, Task
from trainers.errors import DataError
from trainers.split import assign_parts, strata

log = logging.getLogger(__name__)

ENCODINGS = ("utf-8-sig", "latin-1")  # latin-1 decodes any byte: it must come last


@dataclass(frozen=True)
class LabelledSplit:
    texts: list[str]
    labels: np.ndarray  # multi-label: float32 (n, L) of 0/1; multi-class: int64 (n,)
    n_dropped_empty: int = 0  # of a split file: its train part counts the file's
    agreement: np.ndarray | None = (
        None  # float32 (n, L): annotators' share agreeing with each label
    )


def read_csv(path: Path, encoding: str = "auto") -> pd.DataFrame:
    """Every cell as text. A header that names a column twice is refused: pandas would silently
    rename the second one `name.1` and read the first."""
    if not path.is_file():
        raise DataError(
            f"{path}: {'is a folder, not a file' if path.is_dir() else 'file not found'}; check data.dir / DATA_DIR"
        )
    for enc in ENCODINGS if encoding == "auto" else (encoding,):
        try:
            _check_header(path, enc)
            return pd.read_csv(path, encoding=enc, keep_default_na=False, dtype=str)
        except UnicodeDecodeError:
            continue
        except LookupError:
            raise DataError(
                f"{path}: encoding {enc!r} is unknown; set data.encoding to auto, utf-8, latin-1, …"
            ) from None
        except OSError as e:
            raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: is empty (no header, no rows)") from None
        except (pd.errors.ParserError, csv.Error) as e:
            raise DataError(
                f"{path}: not a readable CSV ({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})"
            ) from None
    raise DataError(f"{path}: cannot be decoded as {encoding}; set data.encoding")


def _check_header(path: Path, encoding: str) -> None:
    with path.open(encoding=encoding, newline="") as f:
        header = next(csv.reader(f), [])
    repeated = [name for name, n in Counter(header).items() if n > 1]
    if repeated:
        raise DataError(
            f"{path}: the header names column(s) {repeated} more than once; rename or remove the copies"
        )


def load_split(path: Path | SplitPart, data: DataConfig, task: Task) -> LabelledSplit:
    """A split's texts and labels: a file of its own, or a part of one file (data.split)."""
    file = path.file if isinstance(path, SplitPart) else path
    frame = read_csv(file, data.encoding)
    needed = [
        data.text_column,
        *(data.label_columns or ()),
        *([data.label_column] if data.label_column else []),
    ]
    needed += _agreement_columns(data)
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(f"{file}: missing column(s) {missing}; columns are {list(frame.columns)}")
    texts = frame[data.text_column].str.strip()
    keep = texts != ""
    n_dropped = int((~keep).sum())
    if n_dropped:
        log.warning("%s: dropped %d row(s) with empty text", file, n_dropped)
    frame = frame[keep]
    labels = (
        _multi_label(frame, data, file)
        if task == "multi_label"
        else _multi_class(frame, data, file)
    )
    agreement = _agreement(frame, data, file) if data.agreement_suffix else None
    split = LabelledSplit(
        texts=texts[keep].tolist(), labels=labels, n_dropped_empty=n_dropped, agreement=agreement
    )
    return _part(split, path, data, task) if isinstance(path, SplitPart) else split


def _part(whole: LabelledSplit, part: SplitPart, data: DataConfig, task: Task) -> LabelledSplit:
    assert data.split is not None  # DataConfig refuses parts without a split
    mine = assign_parts(strata(whole.labels, task), data.split) == part.part
    return LabelledSplit(
        texts=[t for t, m in zip(whole.texts, mine, strict=True) if m],
        labels=whole.labels[mine],
        n_dropped_empty=whole.n_dropped_empty if part.part == "train" else 0,
        agreement=None if whole.agreement is None else whole.agreement[mine],
    )


def split_table(data: DataConfig, task: Task) -> pd.DataFrame:
    """Which part every row of a split file went to: `row` (0-based, the header not counted;
    row r is line r + 2 of the CSV) and `split` ("train", "val", "test", or "dropped: empty
    text"). For auditing: the split itself is recomputed by every reader."""
    part = data.train_path
    if data.split is None or not isinstance(part, SplitPart):
        raise DataError("split_table needs data.split (one file divided into parts)")
    whole = load_split(part.file, data, task)  # checks the columns and labels
    keep = (read_csv(part.file, data.encoding)[data.text_column].str.strip() != "").to_numpy()
    out = np.full(len(keep), "dropped: empty text", dtype=object)
    out[keep] = assign_parts(strata(whole.labels, task), data.split)
    return pd.DataFrame({"row": np.arange(len(keep)), "split": out})


def soft_targets(labels: np.ndarray, agreement: np.ndarray, weight: float) -> np.ndarray:
    """Labels moved `weight` of the way to the annotators' view: a comment that 2 of 3 annotators
    called hostile gets target 0.67, one that 1 of 3 did gets 0.33 instead of 0. On crowd-labelled
    rare labels this tells the model which negatives were borderline."""
    by_annotators = np.where(labels > 0, agreement, 1.0 - agreement)
    return (labels + weight * (by_annotators - labels)).astype(np.float32)


def _agreement_columns(data: DataConfig) -> list[str]:
    if not data.agreement_suffix:
        return []
    return [f"{name}{data.agreement_suffix}" for name in data.label_columns or ()]


def _agreement(frame: pd.DataFrame, data: DataConfig, path: Path) -> np.ndarray:
    return _numeric_columns(
        frame,
        _agreement_columns(data),
        path,
        "agreement",
        "shares in [0, 1]",
        lambda v: v.between(0.0, 1.0),
    )


def _multi_label(frame: pd.DataFrame, data: DataConfig, path: Path) -> np.ndarray:
    return _numeric_columns(
        frame, list(data.label_columns or ()), path, "label", "0/1", lambda v: v.isin([0.0, 1.0])
    )


def _numeric_columns(
    frame: pd.DataFrame, names: list[str], path: Path, kind: str, must: str, valid
) -> np.ndarray:
    """float32 (n, len(names)); the first invalid cell (NaN included) is a one-line error."""
    columns = []
    for name in names:
        values = pd.to_numeric(frame[name].str.strip(), errors="coerce")
        bad = ~valid(values)
        if bad.any():
            example = frame[name][bad].iloc[0]
            raise DataError(
                f"{path}: {kind} column {name!r} must hold {must}, but has {example!r} ({int(bad.sum())} rows)"
            )
        columns.append(values.to_numpy(np.float32))
    return np.stack(columns, axis=1)


def _multi_class(frame: pd.DataFrame, data: DataConfig, path: Path) -> np.ndarray:
    names = list(data.class_names or ())
    values = frame[data.label_column].str.strip()
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise DataError(
            f"{path}: column {data.label_column!r} has value(s) {unknown[:5]} not in data.class_names {names}"
        )
    return values.map({n: i for i, n in enumerate(names)}).to_numpy(np.int64)
