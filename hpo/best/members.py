"""Ensemble members: one trained model per configuration and seed, kept on disk.

`hpo select` re-runs the top configurations with more seeds; each re-run saves its model under
`runs/<study>/members/`, so `hpo retrain` builds an ensemble from those models instead of
training them again, and trains only the members that are missing (the search's own runs keep
no model). A saved member is reused only when its stored configuration equals the one asked for.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial

from hpo.search_space import replay
from hpo.spec import StudySpec
from trainers.config import TrainConfig

log = logging.getLogger(__name__)

MEMBERS_DIR = "members"  # in runs/<study>/, beside best/
SEED_STRIDE = 1000  # seed i of trial n is base + n + i * SEED_STRIDE: never a search trial's seed


def member_config(
    spec: StudySpec, trial: FrozenTrial, data_dir: Path, i: int, root: Path | None
) -> TrainConfig:
    """Trial `trial` at its i-th seed (0: the search's own), for its full epochs with the best
    epoch kept, saved under `root` when given."""
    seed = spec.sampler.seed + trial.number + i * SEED_STRIDE
    config = spec.train_config(data_dir, replay(spec, trial.params), seed=seed)
    where = None if root is None else Path(root) / f"trial-{trial.number}-seed-{seed}"
    return config.model_copy(update={"save_model_dir": where})


@dataclass
class Member:
    """A trained member as an ensemble needs it (the fields trainers.loop.TrainResult also has)."""

    model: Any
    tokenizer: Any
    extractor: Any
    val_probs: np.ndarray
    best_epoch: int
    best_value: float
    reused: bool


def obtain(config: TrainConfig, device: str | None = None) -> Member:
    """The member saved for `config`, or, when none matches, trained now (and saved)."""
    from trainers.checkpoint import SavedRun, load_best
    from trainers.loop import train_and_evaluate
    from trainers.reporting import PrintReporter

    where = config.save_model_dir
    saved = SavedRun.read(where)
    reused = saved is not None and saved.config == config.model_copy(
        update={"save_model_dir": None}
    )
    if not reused:
        log.info("training %s", where.name)
        train_and_evaluate(config, PrintReporter(config.monitor))
        saved = SavedRun.read(where)
    else:
        log.info("reusing %s (saved by an earlier run)", where)
    model = load_best(where, device=device)
    return Member(model.model, model.tokenizer, model.extractor, np.asarray(saved.val_probs),
                  saved.best_epoch, saved.best_value, reused)  # fmt: skip
