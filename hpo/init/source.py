"""What `hpo init` was pointed at: one CSV, or a folder with train/val/test CSVs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpo.errors import HpoError
from trainers.data import read_csv

SPLIT_FILES = ("train.csv", "val.csv", "test.csv")


class InitError(HpoError):
    """A guess `hpo init` cannot make: the message names the column and the flag that settles it."""


@dataclass(frozen=True)
class DataSource:
    """The CSV file(s) and their rows together (`frame`: every file's rows, train first)."""

    folder: Path
    files: tuple[str, ...]  # one file: it is split; three (or two, without test): train, val, test
    frame: pd.DataFrame
    encoding_note: str
    rows: tuple[int, ...]  # per file

    @property
    def single(self) -> bool:
        return len(self.files) == 1


def read_source(data: str | Path) -> DataSource:
    path = Path(data)
    if path.is_file():
        frame = read_csv(path)
        return DataSource(path.parent, (path.name,), frame, _encoding_note(path), (len(frame),))
    if not path.is_dir():
        raise InitError(
            f"{path}: no such file or folder; give one CSV or a folder with {', '.join(SPLIT_FILES)}"
        )
    present = [name for name in SPLIT_FILES if (path / name).is_file()]
    if present[:2] != ["train.csv", "val.csv"]:
        csvs = sorted(p.name for p in path.glob("*.csv"))
        raise InitError(
            f"{path}: a data folder holds train.csv and val.csv (and test.csv); found {', '.join(csvs) or 'no CSV'}"
        )
    frames = [read_csv(path / name) for name in present]
    for name, frame in zip(present[1:], frames[1:], strict=True):
        missing = [c for c in frames[0].columns if c not in frame.columns]
        if missing:
            raise InitError(f"{path / name}: lacks column(s) {missing} of train.csv")
    frame = pd.concat(frames, ignore_index=True)
    return DataSource(
        path, tuple(present), frame, _encoding_note(path / present[0]), tuple(map(len, frames))
    )


def _encoding_note(path: Path) -> str:
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        return "UTF-8 with a byte-order mark"
    try:
        raw.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError:
        return "not UTF-8: read as Latin-1"
