"""A study is bound to its inputs: it stores the resolved spec (variant applied) and a fingerprint
of its data; results commands read the stored spec and never a file named after the study;
resuming, retraining or scoring on other data is one line; failures and Ctrl-C print the
service's own line, not Optuna's traceback, and keep every finished trial."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from hpo.errors import HpoError
from hpo.report import open_existing_study
from hpo.study import n_finished
from storage import StorageError, run_dir
from testing.data import REPO
from testing.workers import interruptible
from tests.hpo_tests.edge_support import cli, edge_spec, hpo


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Results commands write runs/<study>/ under the current folder: the test's own."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _variant_spec(folder: Path) -> Path:
    return edge_spec(
        folder / "tiny.yaml",
        variants={"wd": {"training": {"weight_decay": 0.1}, "model": {"max_length": 32}}},
    )


def test_a_variant_study_stores_its_resolved_spec_and_results_read_only_that(capsys, here, data):
    spec = _variant_spec(here)
    url = f"sqlite:///{here}/s.db"
    assert (
        cli(
            capsys,
            "study",
            spec,
            "--variant",
            "wd",
            "--data-dir",
            data,
            "--storage",
            url,
            "--n-trials",
            "1",
        ).code
        == 0
    )
    study, stored = open_existing_study("tiny-ucc-wd", url)
    assert (
        stored.name == "tiny-ucc-wd"
        and stored.training["weight_decay"] == 0.1
        and stored.model.max_length == 32
    )
    assert stored.variants == {} and study.user_attrs["spec_resolved"]["n_trials"] == 1
    assert (
        "variant 'wd'" in study.user_attrs["spec_yaml"]
        and "weight_decay: 0.1" in study.user_attrs["spec_yaml"]
    )
    # The spec file may change or go: the study's own copy is what the report uses.
    spec.unlink()
    (here / "studies").mkdir()
    (here / "studies" / "tiny-ucc-wd.yaml").write_text("name: not-this-one\n")
    ran = cli(capsys, "report", "tiny-ucc-wd", "--storage", url, "--data-dir", data)
    assert ran.code == 0, ran.err
    assert (here / "runs" / "tiny-ucc-wd" / "report" / "report.md").is_file()


def test_workers_run_the_variant_they_were_given(here, data):
    spec = _variant_spec(here)
    url = f"sqlite:///{here}/s.db"
    ran = hpo(
        "workers",
        spec,
        "--variant",
        "wd",
        "-n",
        "1",
        "--n-trials",
        "2",
        "--data-dir",
        data,
        "--storage",
        url,
        cwd=here,
    )
    assert ran.code == 0, ran.out + ran.err
    assert optuna.get_all_study_names(url) == ["tiny-ucc-wd"]
    assert n_finished(optuna.load_study(study_name="tiny-ucc-wd", storage=url)) == 2


def _other_val(data: Path, folder: Path) -> Path:
    """The same splits, but one val row changed."""
    (folder / "ucc").mkdir(parents=True)
    for split in ("train", "val", "test"):
        header, rows = (data / "ucc" / f"{split}.csv").read_text().split("\n", 1)
        (folder / "ucc" / f"{split}.csv").write_text(
            header + "\n" + (rows.replace(" the ", " THE ", 1) if split == "val" else rows)
        )
    return folder


def test_resuming_on_other_data_is_refused_and_moved_data_is_not(capsys, here, data):
    spec = edge_spec(here / "tiny.yaml", test_scores=True)
    url = f"sqlite:///{here}/s.db"
    assert (
        cli(capsys, "study", spec, "--data-dir", data, "--storage", url, "--n-trials", "1").code
        == 0
    )
    other = _other_val(data, here / "other")
    line = cli(
        capsys, "study", spec, "--data-dir", other, "--storage", url, "--n-trials", "2"
    ).refused(
        "'tiny-ucc'", "ran on different data (val (", "changed); point --data-dir at its data"
    )
    assert "train" not in line.split("ran on different data")[1].split("changed")[0]
    study = optuna.load_study(study_name="tiny-ucc", storage=url)
    assert n_finished(study) == 1 and len(study.trials) == 1  # nothing lost, nothing run
    fingerprint = study.user_attrs["data_fingerprint"]
    assert (
        set(fingerprint) == {"train", "val", "test"}
        and fingerprint["val"]["rows"] == 48
        and len(fingerprint["val"]["sha256"]) == 64
    )

    moved = here / "moved"
    (moved / "ucc").mkdir(parents=True)
    for split in ("train", "val", "test"):
        (moved / "ucc" / f"{split}.csv").write_bytes((data / "ucc" / f"{split}.csv").read_bytes())
    assert (
        cli(capsys, "study", spec, "--data-dir", moved, "--storage", url, "--n-trials", "2").code
        == 0
    )
    assert n_finished(optuna.load_study(study_name="tiny-ucc", storage=url)) == 2

    cli(capsys, "retrain", "tiny-ucc", "--data-dir", other, "--storage", url).refused(
        "ran on other data (val:", "point --data-dir at the study's data"
    )
    cli(capsys, "score-trials", "tiny-ucc", "--data-dir", other, "--storage", url).refused(
        "ran on other data"
    )
    assert not (here / "runs" / "tiny-ucc" / "best").exists()
    assert cli(capsys, "report", "tiny-ucc", "--data-dir", other, "--storage", url).code == 0
    assert (
        "the data at hand is not the study's"
        in (here / "runs" / "tiny-ucc" / "report" / "report.md").read_text()
    )


def _bare_study(url: str, name: str, attrs: dict | None = None) -> None:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    for key, value in (attrs or {}).items():
        study.set_user_attr(key, value)
    dist = {"learning_rate": FloatDistribution(1e-5, 1e-1, log=True)}
    study.add_trial(
        create_trial(
            state=TrialState.COMPLETE,
            value=0.5,
            params={"learning_rate": 1e-3},
            distributions=dist,
            user_attrs={"best_epoch": 1},
        )
    )


def test_a_study_without_a_stored_spec_never_turns_its_name_into_a_spec_path(capsys, here, data):
    url = f"sqlite:///{here}/s.db"
    _bare_study(url, "plain")
    (here / "studies").mkdir()
    edge_spec(
        here / "studies" / "plain.yaml", name="plain"
    )  # a file of that name must not be read
    for command in ("report", "retrain", "score-trials"):
        cli(capsys, command, "plain", "--storage", url, "--data-dir", data).refused(
            "study 'plain' stores no spec"
        )
    assert not (here / "runs").exists()


def test_a_stored_spec_of_another_study_or_an_unsafe_name_is_refused(capsys, here, data):
    from hpo.spec import load_spec

    url = f"sqlite:///{here}/s.db"
    resolved = load_spec(str(edge_spec(here / "tiny.yaml"))).model_dump(mode="json")
    _bare_study(url, "copied", {"spec_resolved": resolved})
    cli(capsys, "retrain", "copied", "--storage", url, "--data-dir", data).refused(
        "stores the spec of study 'tiny-ucc'"
    )
    _bare_study(url, "../outside", {"spec_resolved": {**resolved, "name": "../outside"}})
    cli(capsys, "report", "../outside", "--storage", url).refused(
        "its stored spec no longer validates", "field name"
    )
    for name in ("../outside", "a/b", "", ".", "..", "x\\y", "-rf"):
        with pytest.raises(StorageError, match="cannot be used as a folder name"):
            run_dir(name)
    _bare_study(url, "no-spec")
    with pytest.raises(HpoError, match="stores no spec"):
        open_existing_study("no-spec", url)


# ---- what a failing or interrupted study prints ----------------------------------------------


def test_failed_trials_print_one_line_each_and_keep_their_traceback_in_the_trial_log(here, data):
    spec = edge_spec(
        here / "tiny.yaml",
        trainer="tests.hpo_tests.edge_trainers:fails_above_1e3",
        sampler={"type": "grid"},
        n_trials=2,
        search_space={"learning_rate": {"type": "categorical", "choices": [1e-2, 1e-4]}},
    )
    url = f"sqlite:///{here}/s.db"
    ran = hpo("study", spec, "--data-dir", data, "--storage", url, cwd=here)
    ran.refused("3 trials failed in a row", "diverged: the learning rate is too high")
    fails = [line for line in ran.out.splitlines() if " FAIL " in line]
    assert len(fails) >= 3 and all(
        "(RuntimeError: diverged: the learning rate is too high)" in line for line in fails
    )
    assert "failed with parameters" not in ran.err and "failed with value" not in ran.err
    study = optuna.load_study(study_name="tiny-ucc", storage=url)
    assert [t.state for t in study.trials].count(
        TrialState.COMPLETE
    ) == 1  # the good point is kept
    assert len(fails) == [t.state for t in study.trials].count(TrialState.FAIL)
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    log = here / "tiny-ucc" / "trials" / str(failed.number) / "train.log"
    assert "Traceback" in log.read_text() and "diverged" in log.read_text()


def test_ctrl_c_prints_one_line_and_keeps_the_finished_trials(here, data):
    spec = edge_spec(
        here / "tiny.yaml",
        trainer="tests.hpo_tests.edge_trainers:slow",
        training={"epochs": 3},
        n_trials=3,
    )
    url = f"sqlite:///{here}/s.db"
    env = {**os.environ, "PYTHONPATH": str(REPO), "EDGE_EPOCH_S": "0.7"}
    command = [
        sys.executable,
        "-m",
        "hpo",
        "study",
        str(spec),
        "--data-dir",
        str(data),
        "--storage",
        url,
    ]
    proc = subprocess.Popen(
        command,
        cwd=here,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _second_trial_running(url):
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in err
    lines = [
        line
        for line in err.splitlines()
        if line.strip() and "resource_tracker" not in line and "warnings.warn" not in line
    ]
    assert lines == [
        "interrupted: the running trial was stopped and marked FAIL; finished trials are kept"
    ], err
    trials = optuna.load_study(study_name="tiny-ucc", storage=url).trials
    assert trials[0].state == TrialState.COMPLETE
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["fail_reason"].startswith(
        "interrupted"
    )


def _second_trial_running(url: str) -> bool:
    try:
        trials = optuna.load_study(study_name="tiny-ucc", storage=url).get_trials(deepcopy=False)
    except KeyError:
        return False
    return (
        len(trials) > 1
        and trials[0].state == TrialState.COMPLETE
        and "epoch_001" in trials[1].user_attrs
    )


def test_a_trial_whose_value_is_never_finite_fails_with_that_reason(capsys, here, data):
    spec = edge_spec(
        here / "tiny.yaml", trainer="tests.hpo_tests.edge_trainers:never_finite", n_trials=1
    )
    url = f"sqlite:///{here}/s.db"
    cli(capsys, "study", spec, "--data-dir", data, "--storage", url).refused(
        "3 trials failed in a row", "tuned_macro_f1 is nan in every epoch"
    )
    assert [t.state for t in optuna.load_study(study_name="tiny-ucc", storage=url).trials] == [
        TrialState.FAIL
    ] * 3


def test_a_study_of_that_name_optimising_the_other_way_is_refused(capsys, here, data):
    url = f"sqlite:///{here}/s.db"
    optuna.create_study(study_name="tiny-ucc", storage=url, direction="minimize")
    spec = edge_spec(here / "tiny.yaml")
    cli(capsys, "study", spec, "--data-dir", data, "--storage", url).refused(
        "exists and minimizes, but the spec maximizes tuned_macro_f1"
    )
    assert optuna.load_study(study_name="tiny-ucc", storage=url).trials == []
