"""The real data sets (DATA_DIR, by default ../shared/data beside the checkout) and small slices
of them: tests train on a few dozen real rows in seconds."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
UCC_LABELS = (
    "antagonize",
    "condescending",
    "dismissive",
    "generalisation",
    "generalisation_unfair",
    "healthy",
    "hostile",
    "sarcastic",
)
COVID_CLASSES = ("Extremely Negative", "Negative", "Neutral", "Positive", "Extremely Positive")


class DataMissing(RuntimeError):
    """DATA_DIR does not hold the data sets."""


@dataclass(frozen=True)
class RealData:
    root: Path

    def slice(self, dest: Path, name: str, rows: dict[str, int]) -> Path:
        """Copy the first rows of each split of data set `name` to dest/name, keeping its
        encoding (covid-tweets has a BOM); returns `dest`, a data dir for specs."""
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for split, n in rows.items():
            frame = pd.read_csv(
                self.root / name / f"{split}.csv",
                encoding="utf-8-sig",
                dtype=str,
                keep_default_na=False,
            )
            frame.head(n).to_csv(
                out / f"{split}.csv",
                index=False,
                encoding="utf-8-sig" if name == "covid-tweets" else "utf-8",
            )
        return dest


# Resolved when first imported (test collection), so a test that changes directory still finds
# a relative DATA_DIR.
_DATA_ROOT = Path(os.environ.get("DATA_DIR") or REPO.parent / "shared" / "data").resolve()


def default_data_root() -> Path:
    """$DATA_DIR, or ../shared/data beside the checkout."""
    return _DATA_ROOT


def add_data_dir_argument(parser) -> None:
    """A benchmark's --data-dir: the folder holding ucc/ and covid-tweets/."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_root(),
        help="the folder holding ucc/ and covid-tweets/ (default: $DATA_DIR or ../shared/data)",
    )


def real_data() -> RealData:
    root = default_data_root()
    if not (root / "ucc" / "train.csv").is_file():
        raise DataMissing(
            f"real data not found under {root} (no ucc/train.csv); set DATA_DIR to the folder holding ucc/"
        )
    return RealData(root)


def slice_dataset(dest: Path, name: str, rows: dict[str, int]) -> Path:
    """`real_data().slice(...)`, for code that has no `real_data` fixture at hand."""
    return real_data().slice(dest, name, rows)
