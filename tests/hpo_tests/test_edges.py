"""The edge: every bad argument, setting, spec file, storage path or predict input is one line
and exit code 2, never a traceback, never silently ignored."""

from __future__ import annotations

import os

import pytest

from tests.hpo_tests.edge_support import cli, edge_spec, hpo, rewrite, saved_tiny_model


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (
            ["study", "{spec}", "--n-trials", "0"],
            "argument --n-trials: '0' is not a whole number of 1 or more",
        ),
        (["study", "{spec}", "--n-trials", "-3"], "argument --n-trials: '-3'"),
        (["study", "{spec}", "--n-trials", "2.5"], "argument --n-trials: '2.5'"),
        (["study", "{spec}", "--heartbeat", "0"], "argument --heartbeat: '0'"),
        (["workers", "{spec}", "-n", "0"], "argument -n/--n-workers: '0'"),
        (["workers", "{spec}", "-n", "-2"], "argument -n/--n-workers: '-2'"),
        (
            ["workers", "{spec}", "--gpus", "a,b"],
            "argument --gpus: 'a,b' is not a comma-separated list",
        ),
        (["workers", "{spec}", "--gpus", ""], "argument --gpus: ''"),
        (["workers", "{spec}", "--gpus", "0,0"], "names device(s) ['0'] twice"),
        (["dashboard", "--port", "70000"], "argument --port: '70000'"),
        (["dashboard", "--port", "-1"], "argument --port: '-1'"),
        (
            ["retrain", "x", "--resamples", "-1"],
            "argument --resamples: '-1' is not a whole number of 0 or more",
        ),
        (
            ["check", "{spec}", "--data-dir", "{spec}"],
            "argument --data-dir: {spec}: is a file, not a folder",
        ),
        (["check", "{spec}", "--data-dir", "/nonexistent/data"], "no such folder"),
        (["dashboard", "--artifact-dir", "{spec}"], "argument --artifact-dir"),
        (["study"], "the following arguments are required: name"),
    ],
)
def test_bad_arguments_are_refused_where_parsed(capsys, spec, argv, fragment):
    argv = [a.replace("{spec}", str(spec)) for a in argv]
    cli(capsys, *argv).refused(fragment.replace("{spec}", str(spec)))


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1.5"])
@pytest.mark.parametrize(
    "command",
    [["check", "{spec}"], ["report", "x"], ["predict", "x", "--text", "hi"], ["dashboard"]],
)
def test_a_bad_heartbeat_setting_is_one_line_for_every_command(
    capsys, monkeypatch, spec, value, command
):
    monkeypatch.setenv("HPO_HEARTBEAT_INTERVAL", value)
    cli(capsys, *[c.replace("{spec}", str(spec)) for c in command]).refused(
        f"HPO_HEARTBEAT_INTERVAL={value!r}"
    )


def test_the_heartbeat_setting_is_parsed_at_run_time_not_when_the_parser_is_built(monkeypatch):
    """A fresh interpreter with a bad value still prints --help (the parser no longer reads it)."""
    ran = hpo("study", "--help", env={"HPO_HEARTBEAT_INTERVAL": "soon"})
    assert ran.code == 0 and "--heartbeat" in ran.out and "Traceback" not in ran.err


def test_data_dir_setting_that_is_a_file(capsys, monkeypatch, spec):
    monkeypatch.setenv("DATA_DIR", str(spec))
    cli(capsys, "check", spec).refused(f"DATA_DIR={spec}: is a file")


def test_n_trials_override_is_validated_like_the_spec(capsys, tmp_path, data):
    grid = edge_spec(
        tmp_path / "grid.yaml",
        sampler={"type": "grid"},
        n_trials=2,
        search_space={"learning_rate": {"type": "categorical", "choices": [1e-3, 2e-3]}},
    )
    cli(
        capsys,
        "study",
        grid,
        "--n-trials",
        "3",
        "--data-dir",
        data,
        "--storage",
        f"sqlite:///{tmp_path}/s.db",
    ).refused("--n-trials 3", "exceeds the grid's 2 points")


# ---- spec files ------------------------------------------------------------------------------


def test_non_utf8_unreadable_and_folder_specs(capsys, tmp_path, spec):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(spec.read_bytes() + "description: caf\xe9\n".encode("latin-1"))
    cli(capsys, "check", latin).refused(str(latin), "not UTF-8 text", "save the spec as UTF-8")
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    cli(capsys, "check", folder).refused("is a folder, not a spec file")
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.yaml"
        locked.write_text(spec.read_text())
        locked.chmod(0)
        cli(capsys, "check", locked).refused("cannot be read")


def test_repeated_yaml_keys_are_refused(capsys, tmp_path, spec):
    twice = tmp_path / "twice.yaml"
    twice.write_text(spec.read_text() + "n_trials: 5\n")
    cli(capsys, "check", twice).refused("not valid YAML", "key 'n_trials' appears twice")


@pytest.mark.parametrize(
    ("encoding", "ok"),
    [("klingon", False), ("rot13", False), ("base64", False), ("latin-1", True), ("auto", True)],
)
def test_unknown_encodings_are_refused_at_spec_load(capsys, spec, data, encoding, ok):
    rewrite(spec, lambda raw: raw["data"].update(encoding=encoding))
    ran = cli(capsys, "check", spec, "--data-dir", data)
    if ok:
        assert ran.code == 0, ran.err
    else:
        ran.refused("field data.encoding", f"encoding {encoding!r} is not a text encoding")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            lambda r: r["data"].update(label_columns=["healthy", "hostile", "healthy"]),
            "label_columns repeats ['healthy']",
        ),
        (
            lambda r: r["data"].update(label_columns=["healthy", " "]),
            "label_columns has an empty name",
        ),
        (
            lambda r: r["data"].update(label_columns=["comment", "healthy"]),
            "text_column 'comment' is also a label column",
        ),
        (
            lambda r: r.update(
                task="multi_class",
                data={
                    **r["data"],
                    "label_columns": None,
                    "label_column": "healthy",
                    "class_names": ["0", "1", "0"],
                },
            ),
            "class_names repeats ['0']",
        ),
        (
            lambda r: r["search_space"].update(
                weight_decay={"type": "float", "low": 0.0, "high": 0.1, "log": True}
            ),
            "search_space.weight_decay: `low > 0`",
        ),
        (
            lambda r: r["search_space"].update(
                epochs={"type": "int", "low": 0, "high": 3, "log": True}
            ),
            "search_space.epochs: `low >= 1`",
        ),
        (
            lambda r: r["search_space"].update(
                warmup_ratio={"type": "float", "low": 0.0, "high": 0.1, "step": 0}
            ),
            "step must be above 0",
        ),
        (
            lambda r: r["search_space"].update(
                warmup_ratio={"type": "float", "low": 0.01, "high": 0.1, "step": 0.01, "log": True}
            ),
            "`step` is not supported",
        ),
        (
            lambda r: r["search_space"].update(
                warmup_ratio={"type": "float", "low": float("nan"), "high": 0.1}
            ),
            "must be finite numbers",
        ),
        (
            lambda r: r["search_space"].update(
                batch_size={"type": "categorical", "choices": [16, 16]}
            ),
            "repeat a value",
        ),
        (
            lambda r: r["search_space"].update(
                batch_size={"type": "categorical", "choices": [[16], 32]}
            ),
            "must be numbers, strings",
        ),
        (lambda r: r.update(trainer="a..b:train"), "field trainer"),
    ],
)
def test_spec_mistakes_optuna_or_the_data_would_hit_later_are_refused_at_load(
    capsys, spec, change, fragment
):
    cli(capsys, "check", rewrite(spec, change)).refused(str(spec), fragment)


# ---- storage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("storage", "fragment"),
    [
        (
            "sqlite:////proc/no-such-folder/optuna.db",
            "cannot create the folder /proc/no-such-folder",
        ),
        ("sqlite:///{tmp}", "is a folder; give a file path"),
        ("sqlite:///{spec}/x.db", "is a file, not a folder"),
        ("not a url", "not a valid storage URL"),
        ("postgresql://u:${EDGE_UNSET_PASSWORD}@h/db", "EDGE_UNSET_PASSWORD is not set"),
    ],
)
def test_unusable_storage_is_one_line(capsys, tmp_path, spec, data, storage, fragment):
    storage = storage.replace("{tmp}", str(tmp_path)).replace("{spec}", str(spec))
    cli(capsys, "study", spec, "--data-dir", data, "--storage", storage).refused(fragment)


def test_a_file_that_is_not_a_database_and_a_missing_one(capsys, tmp_path, spec):
    cli(capsys, "report", "x", "--storage", f"sqlite:///{spec}").refused(
        "file is not a database", "point --storage"
    )
    missing = tmp_path / "typo" / "optuna.db"
    cli(capsys, "report", "x", "--storage", f"sqlite:///{missing}").refused(
        f"no study database at {missing}"
    )
    assert not missing.exists()  # reading a study never creates an empty database


# ---- hpo workers ------------------------------------------------------------------------------


def test_gpus_on_a_machine_without_them_are_refused(capsys, monkeypatch, spec, data):
    from hpo.study import gpus

    monkeypatch.setattr(gpus, "visible_gpus", lambda: (0, set()))
    cli(capsys, "workers", spec, "--gpus", "0,1", "--data-dir", data).refused(
        "--gpus 0,1: this machine shows no NVIDIA GPU"
    )
    monkeypatch.setattr(gpus, "visible_gpus", lambda: (1, set()))
    cli(capsys, "workers", spec, "--gpus", "0,1", "--data-dir", data).refused(
        "device(s) ['1'] not on this machine, which has 1 GPU(s)"
    )


def test_gpu_count_needs_no_torch_and_is_zero_without_a_driver():
    import shutil
    import subprocess
    import sys

    code = "import sys; from hpo.study.gpus import visible_gpus; n, _ = visible_gpus(); print(n, 'torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1] == "False"
    if shutil.which("nvidia-smi") is None:
        assert out[0] == "0"


def test_too_many_workers_for_the_machine(capsys, spec, data):
    cli(capsys, "workers", spec, "-n", "100000", "--data-dir", data).refused(
        "-n 100000: more workers than this machine can run"
    )


# ---- hpo predict inputs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return saved_tiny_model(tmp_path_factory.mktemp("best"))


@pytest.mark.parametrize("texts", [[""], ["   \t"], ["fine", ""]])
def test_empty_texts_are_refused_not_labelled(capsys, model_dir, texts):
    argv = [a for t in texts for a in ("--text", t)]
    cli(capsys, "predict", model_dir, *argv).refused("is empty; give each --text some words")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("comment,id\n", "no rows below the header"),
        ("", "is empty (no header, no rows)"),
        ("comment,id\nhello,1\n  ,2\n", "column 'comment' is empty on 1 row(s), first on line 3"),
        ("comment,comment\nhello,again\n", "names column(s) ['comment'] more than once"),
        ("body\nhello\n", "no column 'comment'"),
    ],
)
def test_unusable_input_files_are_one_line(capsys, tmp_path, model_dir, content, fragment):
    path = tmp_path / "in.csv"
    path.write_text(content)
    cli(capsys, "predict", model_dir, "--file", path).refused(fragment)


def test_missing_input_file_and_bad_outputs(capsys, tmp_path, model_dir):
    cli(capsys, "predict", model_dir, "--file", tmp_path / "nope.csv").refused("no such file")
    good = tmp_path / "in.csv"
    good.write_text("comment\nhello\n")
    cli(
        capsys, "predict", model_dir, "--file", good, "--out", tmp_path / "missing" / "out.csv"
    ).refused("does not exist; create it first")
    cli(capsys, "predict", model_dir, "--file", good, "--out", tmp_path / "out.xlsx").refused(
        "ending in .csv or .jsonl"
    )
    (tmp_path / "taken.csv").mkdir()
    cli(capsys, "predict", model_dir, "--file", good, "--out", tmp_path / "taken.csv").refused(
        "is a folder"
    )
    ran = cli(capsys, "predict", model_dir, "--file", good, "--out", tmp_path / "out.jsonl")
    assert ran.code == 0 and (tmp_path / "out.jsonl").read_text().count("\n") == 1


def test_not_a_model_directory(capsys, tmp_path, spec):
    cli(capsys, "predict", tmp_path, "--text", "hello").refused(
        "not a saved model (labels.json missing)"
    )
    cli(capsys, "predict", spec, "--text", "hello").refused("not a saved model")


def test_a_study_name_given_for_its_model_is_pointed_to_the_model(capsys, tmp_path, monkeypatch):
    (tmp_path / "runs" / "my-study" / "best").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    cli(capsys, "predict", "my-study", "--text", "hello").refused(
        "my-study: not a model directory; study my-study's retrained model is in runs/my-study/best"
    )
