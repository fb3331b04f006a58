"""Do the hand-made features help? The study's answer from its own trials.

A study that searches `features: [true, false]` trains both kinds of model under the same
sampler; comparing only the two best trials would hide how much of the gap is luck, so the table
also gives each side's mean and standard deviation over its complete trials and the standard
error of the difference of the means.
"""

from __future__ import annotations

import math

import pandas as pd

DIFFERENCE = "with − without"


def features_table(trials: pd.DataFrame, maximize: bool) -> pd.DataFrame | None:
    """Per `features` value (complete trials): count, best, mean and std of the objective, then
    a row with the differences (with − without): of the bests, of the means, and the standard
    error of the mean difference (Welch's) in the std column. None when the trials do not
    differ in `features`."""
    if "features" not in trials or trials["features"].nunique(dropna=True) < 2:
        return None
    done = trials[trials["state"] == "COMPLETE"]
    rows = []
    for value, label in ((True, "with features"), (False, "without features")):
        scores = done.loc[done["features"] == value, "objective"].dropna()
        pruned = int(((trials["features"] == value) & (trials["state"] == "PRUNED")).sum())
        rows.append({
            "features": label,
            "complete_trials": len(scores),
            "pruned_trials": pruned,
            "best": (scores.max() if maximize else scores.min()) if len(scores) else math.nan,
            "mean": scores.mean() if len(scores) else math.nan,
            "std": scores.std(ddof=1) if len(scores) > 1 else math.nan,
        })  # fmt: skip
    on, off = rows
    rows.append({
        "features": DIFFERENCE,
        "complete_trials": pd.NA,
        "pruned_trials": pd.NA,
        "best": on["best"] - off["best"],
        "mean": on["mean"] - off["mean"],
        "std": _standard_error(on, off),
    })  # fmt: skip
    return pd.DataFrame(rows).astype({"complete_trials": "Int64", "pruned_trials": "Int64"})


def features_by_setting(trials: pd.DataFrame, setting: str, maximize: bool) -> pd.DataFrame | None:
    """Best objective of the complete trials per (`features`, `setting`) value, e.g. pooling:
    with CLS pooling and no features the model is the plain transformers head, so this shows
    the comparison at a fixed head too. None unless both columns vary."""
    if (
        features_table(trials, maximize) is None
        or setting not in trials
        or trials[setting].nunique(dropna=True) < 2
    ):
        return None
    done = trials[trials["state"] == "COMPLETE"]
    return done.pivot_table(
        index="features", columns=setting, values="objective", aggfunc="max" if maximize else "min"
    )


def _standard_error(on: dict, off: dict) -> float:
    if min(on["complete_trials"], off["complete_trials"]) < 2:
        return math.nan
    return math.sqrt(
        on["std"] ** 2 / on["complete_trials"] + off["std"] ** 2 / off["complete_trials"]
    )
