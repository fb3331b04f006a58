"""`hpo init`: the text column, task and labels detected from hand-made CSVs; every guess it
cannot make is one line naming the column and the flag; the spec it writes passes `hpo check`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from hpo.cli import main
from hpo.init.detect import detect
from hpo.init.source import InitError, read_source
from hpo.spec import load_spec
from testing.data import real_data

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "box",
    "jolly",
    "mice",
]


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n)) + f" {i}"


def _multi_label_frame(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({
        "id": range(1000, 1000 + n),
        "title": [_sentence(i, 2) for i in range(n)],
        "body": [_sentence(i, 12) for i in range(n)],
        "spam": [int(i % 3 == 0) for i in range(n)],
        "rude": ["1.0" if i % 5 == 0 else "0.0" for i in range(n)],  # written as floats, as UCC does in places
        "spam:agree": [0.67 if i % 4 else 1.0 for i in range(n)],
        "rude:agree": [1.0 if i % 2 else 0.75 for i in range(n)],
    })  # fmt: skip


def _multi_class_frame(n: int = 60) -> pd.DataFrame:
    return pd.DataFrame({
        "tweet": [_sentence(i, 10) for i in range(n)],
        "posted": [f"{1 + i % 28:02d}-03-2020" for i in range(n)],
        "annotators": [3 + i % 3 for i in range(n)],
        "Label": [("pos", "neg", "neutral")[i % 3] for i in range(n)],
    })  # fmt: skip


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv", **kw) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **kw)
    return path


def _error(frame: pd.DataFrame, **kw) -> str:
    with pytest.raises(InitError) as e:
        detect(frame.astype(str), **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_multi_label_from_zero_one_columns(tmp_path):
    found = detect(read_source(_csv(tmp_path, _multi_label_frame())).frame)
    assert found.task == "multi_label" and found.text_column == "body"
    assert found.label_columns == [
        "spam",
        "rude",
    ]  # the agreement shares and the ids are not labels
    assert found.agreement_suffix == ":agree"
    assert "written 0.0/1.0" in found.why["task"] and "longest texts" in found.why["text_column"]


def test_multi_class_from_one_column_of_classes(tmp_path):
    """The dates are not classes and `annotators` loses to the column named like a label."""
    found = detect(read_source(_csv(tmp_path, _multi_class_frame(), encoding="utf-8-sig")).frame)
    assert (found.task, found.text_column, found.label_column) == ("multi_class", "tweet", "Label")
    assert found.class_names == ["neg", "neutral", "pos"]  # sorted


def test_two_close_text_columns_name_both_and_the_flag():
    frame = _multi_label_frame()
    frame["summary"] = [_sentence(i, 11) for i in range(len(frame))]
    message = _error(frame)
    assert "'body'" in message and "'summary'" in message and "--text-column body" in message
    assert detect(frame.astype(str), text_column="summary").text_column == "summary"


def test_a_zero_one_column_with_a_stray_value_names_it_and_the_flag():
    frame = _multi_label_frame()
    frame.loc[4, "rude"] = "2"
    message = _error(frame)
    assert "'rude'" in message and "'2'" in message and "--labels spam" in message
    assert detect(frame.astype(str), labels=["spam"]).label_columns == ["spam"]


def test_given_labels_other_than_zero_one_are_refused_in_one_line():
    message = _error(
        _multi_class_frame(), labels=["Label", "annotators"]
    )  # two columns: multi-label, so 0/1 each
    assert "'Label'" in message and "other than 0/1" in message
    message = _error(_multi_class_frame(), task="multi_label", labels=["Label"])
    assert (
        "'Label'" in message
        and "other than 0/1" in message
        and "--task multi_class --labels Label" in message
    )


def test_two_class_columns_name_both_and_the_flag():
    frame = _multi_class_frame().rename(columns={"Label": "mood"})
    message = _error(frame)
    assert "'annotators'" in message and "'mood'" in message and "--labels" in message
    assert detect(frame.astype(str), labels=["mood"]).class_names == ["neg", "neutral", "pos"]


def test_no_label_column_says_which_flag():
    frame = pd.DataFrame({"text": [_sentence(i, 8) for i in range(40)]})
    assert "--labels" in _error(frame)


def test_a_folder_of_splits_keeps_its_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "mine"
    folder.mkdir(parents=True)
    frame = _multi_class_frame(90)
    for i, split in enumerate(("train", "val", "test")):
        _csv(folder, frame.iloc[i * 30 : (i + 1) * 30], f"{split}.csv")
    assert main(["init", str(folder), "--data-dir", str(tmp_path / "data")]) == 0
    raw = yaml.safe_load((tmp_path / "studies" / "mine.yaml").read_text())
    assert (
        raw["data"]["dir"] == "mine"
        and raw["data"]["train"] == "train.csv"
        and "split" not in raw["data"]
    )


def test_init_writes_a_commented_spec_that_passes_check(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = _csv(tmp_path, _multi_label_frame(80))
    assert (
        main(["init", str(path), "--name", "mine", "--data-dir", str(tmp_path / "elsewhere")]) == 0
    )
    out = capsys.readouterr().out
    assert "studies/mine.yaml: ok  (n_train=56, n_val=12, n_test=12)" in out
    text = (tmp_path / "studies" / "mine.yaml").read_text()
    spec = load_spec(str(tmp_path / "studies" / "mine.yaml"))
    assert (
        spec.data.split is not None
        and spec.data.file == "data.csv"
        and spec.data.dir == str(tmp_path)
    )
    assert (
        spec.model.name_or_path == "packaged:all-MiniLM-L6-v2"
        and spec.objective.metric == "tuned_macro_f1"
    )
    for field in (
        "task:",
        "text_column:",
        "label_columns:",
        "max_length:",
        "split:",
        "objective:",
        "n_trials:",
    ):
        line = next(line for line in text.splitlines() if line.strip().startswith(field))
        assert "  # " in line, f"{field} has no comment saying what it was based on"
    assert main(["init", str(path), "--name", "mine"]) == 2  # exists: refused
    assert "exists" in capsys.readouterr().err


def test_a_guess_it_cannot_make_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    frame = _multi_label_frame()
    frame["summary"] = [_sentence(i, 11) for i in range(len(frame))]
    assert main(["init", str(_csv(tmp_path, frame))]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("error: text column:")
        and "--text-column" in err
        and len(err.splitlines()) == 1
    )
    assert not (tmp_path / "studies").exists()


@pytest.mark.parametrize(
    ("name", "task", "n_labels"), [("ucc", "multi_label", 8), ("covid-tweets", "multi_class", 5)]
)
def test_the_shared_data_sets_as_one_csv(tmp_path, monkeypatch, capsys, name, task, n_labels):
    """Each real data set, its splits concatenated into one file (COVID keeps its BOM)."""
    monkeypatch.chdir(tmp_path)
    frames = [
        pd.read_csv(
            real_data().root / name / f"{s}.csv",
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
        )
        for s in ("train", "val", "test")
    ]
    path = _csv(
        tmp_path,
        pd.concat(frames),
        f"{name}-all.csv",
        encoding="utf-8-sig" if name == "covid-tweets" else "utf-8",
    )
    assert main(["init", str(path)]) == 0
    assert f"studies/{name}-all.yaml: ok" in capsys.readouterr().out
    spec = load_spec(f"{name}-all")
    assert spec.task == task and len(spec.data.label_columns or spec.data.class_names) == n_labels
