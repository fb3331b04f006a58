"""The data profile: its numbers on hand-made splits, and where it shows (report, study note,
`hpo check --profile`), read from the study without the data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from optuna_dashboard import get_note

from hpo import stored
from hpo.cli import main
from hpo.report import report_study
from hpo.report.profile_tables import profile_tables
from hpo.spec import load_spec
from hpo.study import DataFacts, describe_study, open_study
from testing.data import slice_dataset
from testing.specs import tiny_ucc_spec
from trainers.data import LabelledSplit
from trainers.profile import loosen, normalise, profile_splits, token_lengths

ML = np.float32


def _splits() -> dict[str, LabelledSplit]:
    return {
        "train": LabelledSplit(["Good point", "good  POINT", "Hear, hear!", "unique one", "shared text"],
                               np.array([[1, 0], [1, 1], [0, 1], [0, 0], [1, 0]], ML), n_dropped_empty=1),
        "val": LabelledSplit(["Shared text", "hear hear", "fresh"], np.array([[1, 0], [0, 1], [0, 0]], ML)),
        "test": LabelledSplit(["shared text", "other"], np.array([[0, 1], [1, 0]], ML)),
    }  # fmt: skip


LENGTHS = {
    "train": np.array([3, 4, 5, 6, 100]),
    "val": np.array([2, 3, 4]),
    "test": np.array([10, 20]),
}


@pytest.fixture
def profile():
    return profile_splits(_splits(), "multi_label", ["a", "b"], LENGTHS, max_length=8)


def test_rows_and_label_shares_per_split(profile):
    assert profile.rows == {"train": 5, "val": 3, "test": 2}
    shares = {(s.label, s.split): (s.count, round(s.share, 4)) for s in profile.label_shares}
    assert (
        shares[("a", "train")] == (3, 0.6)
        and shares[("a", "val")] == (1, 0.3333)
        and shares[("b", "test")] == (1, 0.5)
    )


def test_cooccurrence_over_all_splits(profile):
    assert profile.cooccurrence == [[5, 1], [1, 4]]


def test_token_lengths_overall_and_per_label(profile):
    overall, a, _ = profile.lengths
    assert (overall.group, overall.texts, overall.p50, overall.max) == ("(all)", 10, 4.5, 100)
    assert overall.truncated_share == pytest.approx(0.3)  # 100, 10 and 20 are over max_length 8
    assert (a.group, a.texts, a.p50, a.max, a.truncated_share) == (
        "a",
        5,
        4.0,
        100,
        pytest.approx(0.4),
    )
    assert sum(sum(c) for c in profile.length_counts.values()) == 10


def test_duplicates_within_and_across_splits(profile):
    train = profile.duplicates[0]
    assert (
        train.empty,
        train.duplicated_exact,
        train.duplicated_normalised,
        train.duplicated_loose,
    ) == (1, 0, 1, 1)
    pairs = {
        (c.first, c.second): (c.shared_exact, c.shared_normalised, c.shared_loose, c.rows_loose)
        for c in profile.cross_split
    }
    assert pairs == {
        ("train", "val"): (0, 1, 2, 2),
        ("train", "test"): (1, 1, 1, 1),
        ("val", "test"): (0, 1, 1, 1),
    }
    assert [profile.cross_split_total(level) for level in ("exact", "normalised", "loose")] == [
        1,
        3,
        4,
    ]
    examples = [(s.counts, s.level) for s in profile.shared_examples]
    assert examples == [
        ({"train": 1, "val": 1, "test": 1}, "exact"),
        ({"train": 1, "val": 1}, "loose"),
    ]


def test_normalising_levels():
    assert (
        normalise("  Great \t POINT ") == "great point" and loosen("Hear, Hear!!!") == "hear hear"
    )
    assert loosen("!!!") != loosen("???")  # punctuation only: not all one text


def test_multi_class_profile_has_no_cooccurrence():
    splits = {
        "train": LabelledSplit(["x", "y", "z"], np.array([0, 1, 1])),
        "val": LabelledSplit(["w"], np.array([2])),
    }
    profile = profile_splits(
        splits,
        "multi_class",
        ["n", "p", "q"],
        {"train": np.array([1, 2, 3]), "val": np.array([4])},
        8,
    )
    assert profile.cooccurrence is None
    assert {(s.label, s.split): s.count for s in profile.label_shares}[("p", "train")] == 2
    assert [t.key for t in profile_tables(profile)] == [
        "data_rows",
        "data_labels",
        "data_token_lengths",
        "data_cross_split",
    ]


def test_token_lengths_count_special_tokens_without_truncation():
    calls = []

    def tokenizer(texts, **kw):
        calls.append(kw)
        return {"input_ids": [[0, *range(len(t.split())), 1] for t in texts]}

    assert token_lengths(["a b c", "d"] * 3, tokenizer, chunk=4).tolist() == [5, 3] * 3
    assert (
        calls[0]["add_special_tokens"] is True
        and calls[0]["truncation"] is False
        and len(calls) == 2
    )


def test_the_report_and_the_note_show_the_stored_profile_without_the_data(tmp_path, profile):
    spec = load_spec(
        str(tiny_ucc_spec(tmp_path / "tiny.yaml", data={"dir": str(tmp_path / "gone")}))
    )
    url = f"sqlite:///{tmp_path}/study.db"
    study = open_study(spec, url)
    profile = profile.model_copy(update={"labels": ["a", "b"], "baseline_val": {"macro_f1": 0.25}})
    describe_study(
        study,
        spec,
        (tmp_path / "tiny.yaml").read_text(),
        DataFacts(rows=profile.rows, profile=profile),
    )
    assert stored.read_profile(study.user_attrs) == profile
    note = get_note(study)
    assert "### Data profile" in note and "texts found in two splits" in note

    html = report_study(
        spec.name, url, tmp_path / "no-data", runs_root=tmp_path / "runs"
    )  # the data is not there
    out = html.parent
    cross = pd.read_csv(out / "data_cross_split.csv")
    assert cross[["shared exact", "shared normalised", "shared loose"]].sum().tolist() == [1, 3, 4]
    assert pd.read_csv(out / "data_baseline_val.csv")["all-majority baseline"].tolist() == [
        0.25
    ]  # as stored, no trials yet
    page = html.read_text()
    for title in (
        "Data: each label&#x27;s share per split",
        "Data: label co-occurrence",
        "Data: token lengths per split",
    ):
        assert title in page


def test_check_profile_prints_the_tables(tmp_path, capsys):
    data = slice_dataset(tmp_path / "data", "ucc", {"train": 40, "val": 48, "test": 20})
    path = tiny_ucc_spec(tmp_path / "tiny.yaml")
    assert main(["check", str(path), "--data-dir", str(data), "--profile"]) == 0
    out = capsys.readouterr().out
    assert "tiny.yaml: ok" in out
    for heading in (
        "Data: rows",
        "each label's count and share",
        "label co-occurrence",
        "token lengths",
        "all-majority baseline",
    ):
        assert heading in out
