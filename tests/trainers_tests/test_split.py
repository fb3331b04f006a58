"""One labelled file split into train/val/test: seeded, stratified, identical in every process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testing.data import REPO
from trainers.config import DataConfig, SplitConfig, SplitPart
from trainers.data import load_split, split_table
from trainers.split import NO_LABEL, assign_parts, strata

LABELS = ("common", "rare")


def _file(tmp_path: Path, n: int = 200) -> Path:
    """`n` rows: every 10th carries the rare label, every 2nd the common one, row 7 has no text."""
    rows = [
        {
            "text": f"text number {i}" if i != 7 else "  ",
            "common": int(i % 2 == 0),
            "rare": f"{float(i % 10 == 0)}",
        }
        for i in range(n)
    ]
    path = tmp_path / "all.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _config(path: Path, **split) -> DataConfig:
    return DataConfig.parts_of(
        path, SplitConfig(**split), text_column="text", label_columns=LABELS
    )


def test_strata_are_the_rarest_label_a_row_carries():
    labels = np.array(
        [[1, 1], [1, 0], [0, 0], [0, 1], [1, 0]], dtype=np.float32
    )  # column 0: 3 rows, column 1: 2
    assert strata(labels, "multi_label").tolist() == [1, 0, NO_LABEL, 1, 0]
    assert strata(np.array([[1, 1], [1, 1]]), "multi_label").tolist() == [
        0,
        0,
    ]  # a tie goes to the earlier column
    assert strata(np.array([2, 0, 1]), "multi_class").tolist() == [2, 0, 1]


def test_parts_have_their_share_overall_and_in_every_stratum():
    row_strata = np.repeat([0, 1, 2], [700, 200, 100])
    parts = assign_parts(row_strata, SplitConfig(val=0.15, test=0.15, seed=3))
    counts = pd.crosstab(row_strata, parts)
    assert counts.sum().to_dict() == {
        "test": 150,
        "train": 700,
        "val": 150,
    }  # round(n * share), exactly
    for stratum, n in ((0, 700), (1, 200), (2, 100)):
        assert (
            abs(counts.loc[stratum, "val"] - 0.15 * n) <= 1
            and abs(counts.loc[stratum, "test"] - 0.15 * n) <= 1
        )


def test_the_seed_changes_the_rows_not_the_sizes():
    row_strata = np.zeros(100, dtype=np.int64)
    a, b = (assign_parts(row_strata, SplitConfig(seed=s)) for s in (0, 1))
    assert (a != b).any() and sorted(a) == sorted(b)
    assert (assign_parts(row_strata, SplitConfig(seed=0)) == a).all()


def test_loading_a_part_reads_only_its_rows(tmp_path):
    config = _config(_file(tmp_path))
    parts = {
        p.part: load_split(p, config, "multi_label")
        for p in (config.train_path, config.val_path, config.test_path)
    }
    assert {k: len(v.texts) for k, v in parts.items()} == {
        "train": 139,
        "val": 30,
        "test": 30,
    }  # 199 rows with text
    assert not set(parts["train"].texts) & set(parts["val"].texts) and not set(
        parts["val"].texts
    ) & set(parts["test"].texts)
    assert all(
        p.labels[:, 1].sum() in (2, 3) for k, p in parts.items() if k != "train"
    )  # the 20 rare rows reach val and test
    assert parts["train"].n_dropped_empty == 1


def test_split_table_audits_every_row(tmp_path):
    config = _config(_file(tmp_path))
    table = split_table(config, "multi_label")
    assert len(table) == 200 and table.loc[7, "split"] == "dropped: empty text"
    val = load_split(config.val_path, config, "multi_label").texts
    assert sorted(f"text number {r}" for r in table.loc[table["split"] == "val", "row"]) == sorted(
        val
    )


def test_without_test_share_there_is_no_test_part(tmp_path):
    config = _config(_file(tmp_path), val=0.2, test=0.0)
    assert (
        config.test_path is None
        and len(load_split(config.val_path, config, "multi_label").texts) == 40
    )


def test_parts_need_a_split():
    with pytest.raises(ValueError, match="split parts need data.split"):
        DataConfig(
            train_path=SplitPart(file=Path("a.csv"), part="train"),
            val_path=Path("v.csv"),
            text_column="t",
            label_columns=("a",),
        )
    with pytest.raises(ValueError, match="leave under 10 %"):
        SplitConfig(val=0.5, test=0.45)


def test_config_round_trips_through_json(tmp_path):
    """The trial's process gets its config as JSON: the parts must survive it."""
    config = _config(_file(tmp_path))
    assert DataConfig.model_validate_json(config.model_dump_json()) == config


_PRINT_SPLIT = """
import json, sys
from pathlib import Path
from trainers.config import DataConfig, SplitConfig
from trainers.data import load_split
config = DataConfig.parts_of(Path(sys.argv[1]), SplitConfig(seed=7), text_column="text", label_columns=("common", "rare"))
print(json.dumps({p.part: load_split(p, config, "multi_label").texts for p in (config.train_path, config.val_path, config.test_path)}))
"""


def test_two_processes_split_identically(tmp_path):
    """No global random state: a process that drew random numbers first still splits the same."""
    path = _file(tmp_path)
    outputs = []
    for warm_up in ("", "import random, numpy; random.random(); numpy.random.rand(5); "):
        result = subprocess.run([sys.executable, "-c", warm_up + _PRINT_SPLIT, str(path)], capture_output=True, text=True, cwd=REPO,
                                timeout=120, check=True, env={"PYTHONPATH": str(REPO), "PYTHONHASHSEED": "random", "PATH": "/usr/bin:/bin"})  # fmt: skip
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] and len(outputs[0]["val"]) == 30
