"""A real batch size × learning rate study of tiny models, run once per test session.

The report and retrain tests both read it; it is built under pytest's session temp directory
so the second module reuses the first one's (each test copies what it changes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import yaml

from hpo.study import DataFacts, describe_study, open_study, run_study
from hpo.spec import StudySpec, load_spec
from tests.support import slice_dataset, tiny_ucc_spec

NAME = "tiny-ucc"
ROWS = {"train": 64, "val": 48, "test": 48}
GRID = {"batch_size": [16, 32], "learning_rate": [1e-3, 3e-3]}


@dataclass(frozen=True)
class TinyStudy:
    root: Path
    spec_path: Path
    data_dir: Path

    @property
    def url(self) -> str:
        return f"sqlite:///{self.root / 'optuna.db'}"

    @property
    def spec(self) -> StudySpec:
        return load_spec(str(self.spec_path))

    def copy_to(self, directory: Path) -> str:
        """A copy of the study's database (SQLite's backup: the WAL's pages included); its URL."""
        target = directory / "optuna.db"
        with sqlite3.connect(self.root / "optuna.db") as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        return f"sqlite:///{target}"


def tiny_study(tmp_path_factory) -> TinyStudy:
    root = tmp_path_factory.getbasetemp() / "tiny-bs-lr-study"
    study = TinyStudy(root, root / f"{NAME}.yaml", root / "data")
    if (root / "done").is_file():
        return study
    root.mkdir(parents=True, exist_ok=True)
    slice_dataset(study.data_dir, "ucc", ROWS)
    tiny_ucc_spec(study.spec_path, name=NAME, sampler={"type": "grid"}, n_trials=4)
    raw = yaml.safe_load(study.spec_path.read_text())
    raw["search_space"] = {name: {"type": "categorical", "choices": choices} for name, choices in GRID.items()}
    study.spec_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec = study.spec
    optuna_study = open_study(spec, study.url)
    describe_study(optuna_study, spec, study.spec_path.read_text(), DataFacts())
    run_study(spec, optuna_study, study.data_dir)
    (root / "done").touch()
    return study
