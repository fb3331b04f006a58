"""Dividing one labelled file into train, validation and test, the same way every time.

The division is a pure function of the rows' labels and the seed: no global random state, no
clock, no process id, so every trial, every worker and every machine that reads the file puts
each row in the same part. It is stratified: multi-label rows by the rarest label they carry
(rows with none form a stratum of their own), multi-class rows by their class, so a label with
20 examples still reaches validation and test in proportion.

Rows are ordered by stratum and, within it, by a seeded permutation; walking that order, a row
is held out whenever the running count of held-out rows, rounded, steps up. Each part's size is
its share of the file rounded, and each stratum's share of a part is within one row of exact.
"""

from __future__ import annotations

import numpy as np

from trainers.config import SplitConfig, Task

NO_LABEL = -1  # the stratum of multi-label rows that carry no label


def strata(labels: np.ndarray, task: Task) -> np.ndarray:
    """Each row's stratum: its class, or (multi-label) the index of its rarest label, rarity
    counted over the whole file; ties go to the earlier column."""
    if task == "multi_class":
        return np.asarray(labels, dtype=np.int64)
    present = np.asarray(labels) > 0
    counts = present.sum(axis=0)
    rarity = np.where(present, counts[None, :], np.iinfo(np.int64).max)
    rarest = rarity.argmin(axis=1)  # argmin keeps the first of equal counts
    return np.where(present.any(axis=1), rarest, NO_LABEL).astype(np.int64)


def assign_parts(row_strata: np.ndarray, config: SplitConfig) -> np.ndarray:
    """ "train", "val" or "test" for each row."""
    n = len(row_strata)
    key = np.random.default_rng(config.seed).permutation(n)
    order = np.lexsort((key, np.asarray(row_strata)))
    held = config.val + config.test
    out = np.full(n, "train", dtype=object)
    holdout = order[_steps(n, held)]
    to_val = _steps(len(holdout), config.val / held)
    out[holdout[to_val]] = "val"
    out[holdout[~to_val]] = "test"
    return out


def _steps(n: int, share: float) -> np.ndarray:
    """Positions 0..n-1 at which round((i + 1) * share) exceeds round(i * share): as evenly
    spread as possible, round(n * share) of them."""
    cumulative = np.floor(np.arange(n + 1) * share + 0.5)
    return np.diff(cumulative) > 0
