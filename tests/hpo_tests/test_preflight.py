"""Preflight (`hpo check`, and `hpo study` before its first trial): what cannot work is one line,
what merely looks wrong is a warning in the output and the study note, and the trainer is found
without running any of its code."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest

from testing.specs import tiny_architecture
from tests.hpo_tests.edge_support import cli, edge_spec, rewrite


def _val(data, tmp_path, change) -> str:
    """A copy of the data folder whose val split is `change(val frame)`; returns the folder."""
    out = tmp_path / "data"
    (out / "ucc").mkdir(parents=True)
    for split in ("train", "val", "test"):
        frame = pd.read_csv(data / "ucc" / f"{split}.csv", dtype=str, keep_default_na=False)
        (change(frame) if split == "val" else frame).to_csv(
            out / "ucc" / f"{split}.csv", index=False
        )
    return str(out)


def test_the_tiny_data_passes_with_warnings(capsys, spec, data):
    ran = cli(capsys, "check", spec, "--data-dir", data)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0] == f"{spec}: ok  (n_train=64, n_val=48, n_test=48)"
    warnings = [line for line in lines[1:] if line.startswith("warning: ")]
    assert any("have no positive training row" in w for w in warnings)
    assert any("few val positives" in w and "'hostile': 1" in w for w in warnings)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda f: f.head(0), "the val split has no rows"),
        (
            lambda f: f.assign(comment="  "),
            "the val split has no rows (48 rows had an empty 'comment')",
        ),
        (lambda f: f.assign(hostile="0"), "label(s) ['hostile'] have no positive row in val"),
        (lambda f: f.assign(healthy="1.0"), "label(s) ['healthy'] are positive on every val row"),
    ],
)
def test_val_that_cannot_score_a_study_is_refused(capsys, tmp_path, spec, data, change, fragment):
    cli(capsys, "check", spec, "--data-dir", _val(data, tmp_path, change)).refused(fragment)


def test_zero_training_rows_and_a_header_only_test_split(capsys, tmp_path, spec, data):
    folder = tmp_path / "d" / "ucc"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_bytes((data / "ucc" / f"{split}.csv").read_bytes())
    header = (data / "ucc" / "train.csv").read_text().splitlines()[0] + "\n"
    (folder / "test.csv").write_text(header)
    cli(capsys, "check", spec, "--data-dir", tmp_path / "d").refused("the test split has no rows")
    (folder / "train.csv").write_text(header)
    cli(capsys, "check", spec, "--data-dir", tmp_path / "d").refused("the train split has no rows")


def test_a_column_named_twice_in_the_header_is_refused(capsys, tmp_path, spec, data):
    """pandas would read the first `healthy` and call the second `healthy.1`."""
    folder = _val(data, tmp_path, lambda f: f)
    path = tmp_path / "data" / "ucc" / "train.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(
        lines[0].rstrip("\n")
        + ",healthy\n"
        + "".join(line.rstrip("\n") + ",0\n" for line in lines[1:2])
    )
    cli(capsys, "check", spec, "--data-dir", folder).refused(
        f"{path}: the header names column(s) ['healthy'] more than once"
    )


def _multi_class(tmp_path, train_classes: str, val_classes: str):
    """Three classes; row i of a split has class `classes[i % len(classes)]`."""
    folder = tmp_path / "mc" / "tweets"
    folder.mkdir(parents=True)
    for split, classes, n in (("train", train_classes, 300), ("val", val_classes, 30)):
        rows = "".join(f"{split} text {i},{classes[i % len(classes)]}\n" for i in range(n))
        (folder / f"{split}.csv").write_text("text,y\n" + rows)
    spec = edge_spec(
        tmp_path / "mc.yaml",
        task="multi_class",
        objective={"metric": "macro_f1"},
        data={
            "dir": "tweets",
            "test": None,
            "text_column": "text",
            "label_columns": None,
            "label_column": "y",
            "class_names": ["a", "b", "c"],
        },
    )
    return spec, tmp_path / "mc"


def test_a_class_absent_from_val_is_refused_and_a_rare_one_is_a_warning(capsys, tmp_path):
    spec, folder = _multi_class(tmp_path, "abc", "ab")
    cli(capsys, "check", spec, "--data-dir", folder).refused("class(es) ['c'] never occur in val")
    spec, folder = _multi_class(
        tmp_path / "rare", "ab" * 75 + "c", "abc"
    )  # 'c': 1 of 300 training rows
    ran = cli(capsys, "check", spec, "--data-dir", folder)
    assert ran.code == 0, ran.err
    assert "warning: " in ran.out and "class(es) under 1 % of train: {'c': 0.0033}" in ran.out


@pytest.mark.parametrize(("model_type", "limit"), [("bert", 160), ("roberta", 158)])
def test_max_length_above_the_models_positions_is_refused(capsys, spec, data, model_type, limit):
    rewrite(
        spec,
        lambda raw: raw["model"].update(
            from_config=tiny_architecture(model_type), max_length=limit + 1
        ),
    )
    cli(capsys, "check", spec, "--data-dir", data).refused(
        f"model.max_length {limit + 1} is above the {limit} positions", f"at most {limit}"
    )
    rewrite(spec, lambda raw: raw["model"].update(max_length=limit))
    assert cli(capsys, "check", spec, "--data-dir", data).code == 0


def test_an_unknown_model_type_or_folder_is_one_line(capsys, tmp_path, spec, data):
    rewrite(
        spec, lambda raw: raw["model"].update(from_config={"model_type": "no-such-architecture"})
    )
    cli(capsys, "check", spec, "--data-dir", data).refused("its config cannot be read")
    rewrite(
        spec,
        lambda raw: raw.update(
            model={"name_or_path": str(tmp_path / "no-model"), "max_length": 64}
        ),
    )
    cli(capsys, "check", spec, "--data-dir", data).refused("no such folder")
    (tmp_path / "empty-model").mkdir()
    rewrite(
        spec,
        lambda raw: raw.update(
            model={"name_or_path": str(tmp_path / "empty-model"), "max_length": 64}
        ),
    )
    cli(capsys, "check", spec, "--data-dir", data).refused(
        "empty-model", "its config cannot be read"
    )


# ---- the trainer is code: found, never run ----------------------------------------------------


def _project(tmp_path, data) -> tuple:
    """A folder with a spec, data and the user's own trainer modules, each of which would leave a
    marker file if it were ever imported."""
    project = tmp_path / "project"
    (project / "mypkg" / "sub").mkdir(parents=True)
    marker = project / "IMPORTED"
    bomb = f"import pathlib\npathlib.Path({str(marker)!r}).write_text(__name__)\n"
    (project / "mytrainer.py").write_text(
        bomb + "def train(config, reporter):\n    raise SystemExit\n"
    )
    (project / "mypkg" / "__init__.py").write_text(bomb)
    (project / "mypkg" / "sub" / "__init__.py").write_text(bomb)
    (project / "mypkg" / "sub" / "deep.py").write_text(
        bomb + "if True:\n    from os import path as train\n"
    )
    (project / "starry.py").write_text(bomb + "from os.path import *\n")
    (project / "broken.py").write_text("def train(:\n")
    return project, marker, edge_spec(project / "spec.yaml", data={"dir": str(data / "ucc")})


@pytest.mark.parametrize(
    ("trainer", "outcome"),
    [
        ("mytrainer:train", "ok"),
        ("mypkg.sub.deep:train", "ok"),
        ("starry:train", "warning: trainer 'starry:train'"),
        ("mytrainer:missing", "defines no top-level 'missing'"),
        ("mypkg.sub.deep:nope", "defines no top-level 'nope'"),
        ("mytrainer.inner:train", "mytrainer is a module, not a package"),
        ("nosuchmodule:train", "no module 'nosuchmodule'"),
        ("broken:train", "broken.py, line 1"),
    ],
)
def test_hpo_check_finds_the_trainer_without_importing_it(
    capsys, monkeypatch, tmp_path, data, trainer, outcome
):
    project, marker, spec = _project(tmp_path, data)
    rewrite(spec, lambda raw: raw.update(trainer=trainer))
    monkeypatch.chdir(project)  # the project's folder is where its modules are found
    ran = cli(capsys, "check", spec.name, "--data-dir", data)
    if outcome == "ok":
        assert ran.code == 0 and "warning: trainer" not in ran.out, ran.err
    elif outcome.startswith("warning"):
        assert ran.code == 0 and outcome in ran.out, ran.out + ran.err
    else:
        ran.refused(outcome)
    assert not marker.exists(), f"hpo check imported {marker.read_text()}"


def test_warnings_reach_the_study_note(capsys, tmp_path, spec, data):
    """Validation on the training data can run, but its scores would measure training fit."""
    from optuna_dashboard import get_note

    folder = tmp_path / "same" / "ucc"
    folder.mkdir(parents=True)
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_bytes((data / "ucc" / "val.csv").read_bytes())
    url = f"sqlite:///{tmp_path}/s.db"
    ran = cli(
        capsys, "study", spec, "--data-dir", tmp_path / "same", "--storage", url, "--n-trials", "1"
    )
    assert ran.code == 0, ran.err
    assert (
        "warning: " in ran.out
        and "has the same content as" in ran.out
        and "validation scores would measure training fit" in ran.out
    )
    study = optuna.load_study(study_name="tiny-ucc", storage=url)
    assert "**Warnings**" in get_note(study) and "test figures would not be held out" in get_note(
        study
    )
    assert any("has the same content as" in w for w in study.user_attrs["preflight_warnings"])


def test_a_missing_blend_encoder_is_one_line_before_the_study(capsys, tmp_path, spec, data):
    missing = str(tmp_path / "no-encoder")
    rewrite(spec, lambda raw: raw.update(blend={"models": ["ngrams"], "encoder": missing}))
    assert cli(capsys, "check", spec, "--data-dir", data).code == 0  # not used: not needed
    rewrite(spec, lambda raw: raw["blend"].update(models=["ngrams", "embeddings"]))
    cli(capsys, "check", spec, "--data-dir", data).refused("blend.encoder", "no such folder")
