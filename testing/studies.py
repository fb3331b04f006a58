"""Studies run in this process as `hpo study` runs them, and trials made by hand for reports."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from hpo.spec import StudySpec, load_spec
from hpo.study import describe_study, open_study, preflight, run_study
from testing.data import RealData
from testing.specs import tiny_ucc_spec

TINY_NAME = "tiny-ucc"
TINY_ROWS = {"train": 64, "val": 48, "test": 48}
TINY_GRID = {"batch_size": [16, 32], "learning_rate": [1e-3, 3e-3]}


def run_tiny_study(
    spec_path: Path,
    url: str,
    data_dir: Path,
    *,
    enqueue: Iterable[dict[str, Any]] = (),
    artifact_dir: Path | None = None,
) -> optuna.Study:
    """What `hpo study SPEC` does: check the data, open the study and record its spec and data
    facts, queue `enqueue`'s parameters first, run it to n_trials."""
    spec = load_spec(str(spec_path))
    facts = preflight(spec, data_dir)
    study = open_study(spec, url, heartbeat_interval=None)
    describe_study(study, spec, spec_path.read_text(), facts)
    for params in enqueue:
        study.enqueue_trial(params)
    run_study(spec, study, data_dir, artifact_dir=artifact_dir)
    return study


@dataclass(frozen=True)
class TinyStudy:
    """A finished grid study (batch size × learning rate, 4 tiny models) in a SQLite file."""

    root: Path
    spec_path: Path
    data_dir: Path
    name: str = TINY_NAME

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


def build_tiny_study(root: Path, data: RealData) -> TinyStudy:
    root.mkdir(parents=True, exist_ok=True)
    study = TinyStudy(
        root, root / f"{TINY_NAME}.yaml", data.slice(root / "data", "ucc", TINY_ROWS)
    )
    space = {
        name: {"type": "categorical", "choices": choices} for name, choices in TINY_GRID.items()
    }
    tiny_ucc_spec(study.spec_path, name=TINY_NAME, sampler={"type": "grid"}, n_trials=4)
    raw = yaml.safe_load(study.spec_path.read_text())
    study.spec_path.write_text(yaml.safe_dump({**raw, "search_space": space}, sort_keys=False))
    run_tiny_study(study.spec_path, study.url, study.data_dir)
    return study


Space = dict[str, BaseDistribution | list[Any] | tuple[float, float]]


def made_trial(
    params: dict[str, Any],
    space: Space,
    *,
    state: TrialState = TrialState.COMPLETE,
    value: float | None = None,
    user_attrs: dict[str, Any] | None = None,
    intermediate: dict[int, float] | None = None,
) -> FrozenTrial:
    """A trial made by hand, for `study.add_trial`. `space` gives each parameter's distribution:
    a list of choices, a (low, high) float range, or an Optuna distribution."""
    return optuna.trial.create_trial(
        state=state, value=value, params=params, distributions={k: _distribution(space[k]) for k in params},
        user_attrs=user_attrs or {}, intermediate_values=intermediate or {},
    )  # fmt: skip


def _distribution(d: BaseDistribution | list[Any] | tuple[float, float]) -> BaseDistribution:
    if isinstance(d, BaseDistribution):
        return d
    if isinstance(d, tuple):
        return FloatDistribution(*d)
    return CategoricalDistribution(d)
