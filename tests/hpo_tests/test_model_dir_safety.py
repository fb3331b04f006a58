"""A model directory is data: `hpo predict` reads only the files labels.json lists, each checked
against its sha256, none of them a pickle; a crafted file can neither run nor be loaded."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpo.errors import HpoError
from hpo.stored import BestMetrics
from tests.hpo_tests.edge_support import TEXTS, cli, saved_tiny_model
from trainers.checkpoint import LABELS_FILE, load_best
from trainers.errors import TrainerError
from trainers.features import FEATURES_FILE, TextFeatureExtractor
from trainers.manifest import sha256_of


class _Payload:
    """Unpickling this creates `marker`: proof that loading ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _pickle(marker: Path) -> bytes:
    return pickle.dumps(_Payload(marker))


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("saved")
    return {
        "plain": saved_tiny_model(root / "plain", features=False),
        "features": saved_tiny_model(root / "features", features=True),
    }


@pytest.fixture
def copy(saved, tmp_path):
    def make(kind: str) -> Path:
        return Path(shutil.copytree(saved[kind], tmp_path / kind))

    return make


def _card(folder: Path) -> dict:
    return json.loads((folder / LABELS_FILE).read_text())


def test_every_file_of_a_saved_model_is_data_and_hashed(saved):
    for folder in saved.values():
        card = _card(folder)
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {
            LABELS_FILE
        }
        assert set(card["files"]) == on_disk
        assert all(name.endswith((".json", ".safetensors")) for name in on_disk)
        assert all(card["files"][name] == sha256_of(folder / name) for name in on_disk)
    assert (
        _card(saved["features"])["features"] is True
        and FEATURES_FILE in _card(saved["features"])["files"]
    )
    assert (
        _card(saved["plain"])["features"] is False
        and not (saved["plain"] / FEATURES_FILE).exists()
    )
    state = json.loads((saved["features"] / FEATURES_FILE).read_text())  # plain numbers, no pickle
    assert len(state["vocabulary"]) == 5 and len(state["mean"]) == len(state["scale"])


@pytest.mark.parametrize("kind", ["plain", "features"])
def test_a_crafted_pickle_beside_the_model_never_runs(capsys, copy, tmp_path, kind):
    folder = copy(kind)
    marker = tmp_path / "code-ran"
    for name in (
        "features.joblib",
        "pytorch_model.bin",
        "model.pkl",
        "backbone/pytorch_model.bin",
    ):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_bytes(_pickle(marker))
    ran = cli(capsys, "predict", folder, "--text", TEXTS[0], "--text", TEXTS[1])
    assert ran.code == 0, ran.err
    assert [json.loads(line)["text"] for line in ran.out.splitlines()] == TEXTS[:2]
    assert not marker.exists()


@pytest.mark.parametrize(
    "listed",
    ["features.json", "model.safetensors", "thresholds.json", "backbone/model.safetensors"],
)
def test_a_pickle_in_place_of_a_listed_file_is_refused(capsys, copy, tmp_path, listed):
    folder = copy(
        "features" if listed in ("features.json", "backbone/model.safetensors") else "plain"
    )
    marker = tmp_path / "code-ran"
    (folder / listed).write_bytes(_pickle(marker))
    cli(capsys, "predict", folder, "--text", "hello").refused(
        f"{folder / listed}: its content does not match the sha256"
    )
    assert not marker.exists()


def test_a_pickle_listed_with_its_own_hash_is_still_refused(capsys, copy, tmp_path):
    """Whoever writes the directory also writes labels.json: the hashes catch accidents, the
    list of data-only formats catches intent."""
    folder = copy("plain")
    marker = tmp_path / "code-ran"
    (folder / "features.joblib").write_bytes(_pickle(marker))
    card = _card(folder)
    card["features"] = True
    card["files"]["features.joblib"] = sha256_of(folder / "features.joblib")
    (folder / LABELS_FILE).write_text(json.dumps(card))
    cli(capsys, "predict", folder, "--text", "hello").refused(
        "'features.joblib' is not in a data-only format"
    )
    assert not marker.exists()


def test_a_feature_model_without_its_feature_state_is_refused(capsys, copy):
    folder = copy("features")
    card = _card(folder)
    del card["files"][FEATURES_FILE]
    (folder / LABELS_FILE).write_text(json.dumps(card))
    cli(capsys, "predict", folder, "--text", "hello").refused(f"lists no {FEATURES_FILE}")


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (lambda text: text[: len(text) // 2], "not valid JSON"),
        (lambda text: "\xff\xfe" + text, "not valid JSON"),
        (lambda text: "[]", "Input should be a valid dictionary"),
        (lambda text: text.replace('"multi_label"', '"regression"'), "task"),
        (lambda text: json.dumps({**json.loads(text), "names": 5}), "names"),
        (lambda text: json.dumps({**json.loads(text), "names": ["a", "a"]}), "label names repeat"),
        (
            lambda text: json.dumps({**json.loads(text), "names": ["a", "b", "c"]}),
            "names 3 labels, but the model predicts 8",
        ),
        (
            lambda text: json.dumps({**json.loads(text), "max_length": 100000}),
            "max_length 100000 is above the model's 160 positions",
        ),
        (
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "files"}),
            "lists no file hashes",
        ),
        (
            lambda text: json.dumps(
                {
                    **json.loads(text),
                    "files": {**json.loads(text)["files"], "../outside.json": "0" * 64},
                }
            ),
            "leaves the directory",
        ),
        (
            lambda text: json.dumps(
                {**json.loads(text), "files": {**json.loads(text)["files"], "config.json": "abc"}}
            ),
            "no valid sha256",
        ),
    ],
)
def test_a_corrupt_labels_json_is_one_line(capsys, copy, edit, fragment):
    folder = copy("plain")
    path = folder / LABELS_FILE
    path.write_bytes(edit(path.read_text()).encode("latin-1"))  # "\xff" stays one byte: not UTF-8
    cli(capsys, "predict", folder, "--text", "hello").refused(str(path.parent), fragment)


def test_a_listed_file_that_is_missing(capsys, copy):
    folder = copy("plain")
    (folder / "tokenizer.json").unlink()
    cli(capsys, "predict", folder, "--text", "hello").refused(
        f"{folder / 'tokenizer.json'}: missing"
    )


def test_saving_again_leaves_no_stale_file_listed(copy, tmp_path):
    """A feature model saved over a plain one (or the reverse): only the new files are listed."""
    folder = copy("features")
    saved_tiny_model(folder, features=False)
    card = _card(folder)
    assert (
        card["features"] is False
        and FEATURES_FILE not in card["files"]
        and "fusion.json" not in card["files"]
    )
    best = load_best(folder)
    assert best.extractor is None and best.thresholds is not None


def test_feature_state_rebuilds_the_same_transform_without_unpickling(tmp_path):
    for top_n in (0, 5):
        fitted = TextFeatureExtractor(tfidf_top_n=top_n).fit(TEXTS)
        fitted.save(tmp_path / str(top_n))
        loaded = TextFeatureExtractor.load(tmp_path / str(top_n))
        assert loaded.feature_names == fitted.feature_names
        np.testing.assert_array_equal(
            loaded.transform(TEXTS + ["", "😷"]), fitted.transform(TEXTS + ["", "😷"])
        )


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda s: s.update(idf=s["idf"][:-1]), "idf values for"),
        (lambda s: s.update(mean=s["mean"][:-1]), "scaler statistics"),
        (
            lambda s: s.update(hand_features=s["hand_features"][::-1]),
            "hand-made features are not this version's",
        ),
        (lambda s: s.update(scale=[0.0] * len(s["scale"])), "scale is not positive"),
        (lambda s: s.update(vocabulary=["same"] * len(s["vocabulary"])), "repeats a word"),
        (lambda s: s.update(extra=1), "Extra inputs"),
    ],
)
def test_an_inconsistent_feature_state_is_one_line(tmp_path, change, fragment):
    path = TextFeatureExtractor(tfidf_top_n=5).fit(TEXTS).save(tmp_path)
    state = json.loads(path.read_text())
    change(state)
    path.write_text(json.dumps(state))
    with pytest.raises(TrainerError, match="not a fitted feature state") as e:
        TextFeatureExtractor.load(tmp_path)
    assert fragment in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content", ["{", "[]", '{"study": "x"}', "\xff"])
def test_a_corrupt_metrics_json_is_one_line(tmp_path, content):
    (tmp_path / BestMetrics.FILENAME).write_text(content, encoding="latin-1")
    with pytest.raises(HpoError, match="not what `hpo retrain` writes") as e:
        BestMetrics.read(tmp_path)
    assert str(tmp_path / BestMetrics.FILENAME) in str(e.value) and "\n" not in str(e.value)
