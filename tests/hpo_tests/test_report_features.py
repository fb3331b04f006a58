"""The with/without-features table, worked out by hand on a small trials table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from hpo.report.features import DIFFERENCE, features_by_setting, features_table


def _trials() -> pd.DataFrame:
    return pd.DataFrame({
        "trial": range(7),
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "FAIL"],
        "features": [True, True, True, False, False, False, True],
        "pooling": ["cls", "mean", "mean", "cls", "mean", "mean", "cls"],
        "objective": [0.50, 0.60, 0.55, 0.52, 0.48, 0.30, math.nan],
    })  # fmt: skip


def test_best_mean_std_and_their_differences():
    table = features_table(_trials(), maximize=True).set_index("features")
    on, off, diff = (
        table.loc["with features"],
        table.loc["without features"],
        table.loc[DIFFERENCE],
    )
    assert (
        on["complete_trials"],
        on["pruned_trials"],
        off["complete_trials"],
        off["pruned_trials"],
    ) == (3, 0, 2, 1)
    assert on["best"] == pytest.approx(0.60) and off["best"] == pytest.approx(0.52)
    assert on["mean"] == pytest.approx(0.55) and off["mean"] == pytest.approx(0.50)
    assert on["std"] == pytest.approx(0.05) and off["std"] == pytest.approx(math.sqrt(0.0008))
    assert diff["best"] == pytest.approx(0.08) and diff["mean"] == pytest.approx(0.05)
    assert diff["std"] == pytest.approx(
        math.sqrt(0.05**2 / 3 + 0.0008 / 2)
    )  # Welch's standard error


def test_minimising_takes_the_lowest_as_best():
    table = features_table(_trials(), maximize=False).set_index("features")
    assert table.loc[DIFFERENCE, "best"] == pytest.approx(0.50 - 0.48)


def test_no_table_unless_the_trials_differ_in_features():
    trials = _trials()
    assert features_table(trials.drop(columns="features"), True) is None
    assert features_table(trials.assign(features=True), True) is None


def test_best_per_features_and_pooling():
    pivot = features_by_setting(_trials(), "pooling", maximize=True)
    assert pivot.loc[True, "mean"] == pytest.approx(0.60) and pivot.loc[
        False, "mean"
    ] == pytest.approx(0.48)
    assert pivot.loc[False, "cls"] == pytest.approx(0.52)
    assert features_by_setting(_trials().assign(pooling="cls"), "pooling", True) is None
