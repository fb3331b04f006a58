"""Reading labelled CSVs as users bring them: BOMs, Latin-1, 0.0/1 labels, empty texts."""

from __future__ import annotations

import numpy as np
import pytest

from testing.data import COVID_CLASSES, UCC_LABELS, RealData
from trainers.config import DataConfig
from trainers.data import load_split, read_csv
from trainers.errors import DataError


def _ucc_config(data: RealData, **kw) -> DataConfig:
    base = data.root / "ucc"
    return DataConfig(
        train_path=base / "train.csv",
        val_path=base / "val.csv",
        text_column="comment",
        label_columns=UCC_LABELS,
        **kw,
    )


def _covid_config(data: RealData) -> DataConfig:
    base = data.root / "covid-tweets"
    return DataConfig(
        train_path=base / "train.csv",
        val_path=base / "val.csv",
        text_column="OriginalTweet",
        label_column="Sentiment",
        class_names=COVID_CLASSES,
    )


def test_ucc_loads_all_labels_as_floats(real_data):
    config = _ucc_config(real_data)
    split = load_split(config.train_path, config, "multi_label")
    assert split.labels.shape == (len(split.texts), 8) and split.labels.dtype == np.float32
    assert set(np.unique(split.labels)) <= {0.0, 1.0}
    assert 0.9 < split.labels[:, UCC_LABELS.index("healthy")].mean() < 0.95  # the README's ~92 %
    assert len(split.texts) + split.n_dropped_empty == 3575


def test_covid_has_a_bom_and_the_header_survives(real_data):
    path = real_data.root / "covid-tweets" / "train.csv"
    assert path.read_bytes()[:3] == b"\xef\xbb\xbf"
    frame = read_csv(path)
    assert frame.columns[0] == "UserName"  # not '\ufeffUserName'
    config = _covid_config(real_data)
    split = load_split(path, config, "multi_class")
    assert split.labels.dtype == np.int64 and set(split.labels) == set(range(5))
    assert len(split.texts) == 1522


def test_latin1_file_is_read_without_mangling(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "text,label\nCaf\xe9 cr\xe8me,Positive\nna\xefve,Negative\n".encode("latin-1")
    )
    config = DataConfig(
        train_path=path,
        val_path=path,
        text_column="text",
        label_column="label",
        class_names=("Negative", "Positive"),
    )
    split = load_split(path, config, "multi_class")
    assert split.texts == ["Café crème", "naïve"] and list(split.labels) == [1, 0]


def test_labels_written_as_floats_and_empty_texts_dropped(tmp_path, caplog):
    path = tmp_path / "d.csv"
    path.write_text("text,a,b\nhello,0.0,1.0\n   ,1,0\nworld,1,0\n")
    config = DataConfig(
        train_path=path, val_path=path, text_column="text", label_columns=("a", "b")
    )
    split = load_split(path, config, "multi_label")
    assert split.texts == ["hello", "world"] and split.n_dropped_empty == 1
    assert split.labels.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert "dropped 1 row(s) with empty text" in caplog.text


def test_non_binary_label_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,a\nhello,2\n")
    config = DataConfig(train_path=path, val_path=path, text_column="text", label_columns=("a",))
    with pytest.raises(DataError, match=r"label column 'a' must hold 0/1, but has '2'"):
        load_split(path, config, "multi_label")


def test_unknown_class_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,s\nhello,Happy\n")
    config = DataConfig(
        train_path=path, val_path=path, text_column="text", label_column="s", class_names=("Sad",)
    )
    with pytest.raises(DataError, match="'Happy'"):
        load_split(path, config, "multi_class")
