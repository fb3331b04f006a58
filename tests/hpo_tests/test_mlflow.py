"""MLflow, real and local: a tracking server started here on 127.0.0.1, studies logged to it by
`hpo study` and `hpo workers` processes, and every run read back through MLflow's own client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import yaml

from testing.data import REPO, UCC_LABELS, slice_dataset
from testing.pg_server import free_port
from testing.specs import tiny_architecture, tiny_ucc_spec

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

EPOCHS = 3
SLEEP = "tests.hpo_tests.tracking_trainer:sleep"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` with a SQLite backend and proxied artifacts; stopped after the module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts")]  # fmt: skip
    with (root / "server.log").open("w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, root / "server.log")
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not healthy after {timeout_s}s: {log.read_text()[-2000:]}")


def _split_file(folder: Path, n: int = 60) -> Path:
    rows = [
        {
            "text": f"comment number {i} says {'yes' if i % 3 else 'no'}",
            "a": int(i % 3 == 0),
            "b": int(i % 4 == 0),
        }
        for i in range(n)
    ]
    path = folder / "all.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _sleep_spec(folder: Path, name: str, trainer: str, tracking: str, n_trials: int) -> Path:
    spec = {
        "name": name,
        "task": "multi_label",
        "data": {
            "dir": str(folder),
            "file": _split_file(folder).name,
            "split": {"val": 0.2, "test": 0.2, "seed": 0},
            "text_column": "text",
            "label_columns": ["a", "b"],
        },  # fmt: skip
        "model": {
            "from_config": tiny_architecture(),
            "max_length": 32,
        },  # only its tokenizer is loaded, for the profile
        "training": {"epochs": EPOCHS},
        "search_space": {
            "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
        },
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "objective": {"metric": "macro_f1"},
        "trainer": trainer,
        "n_trials": n_trials,
        "tracking": {"mlflow": tracking},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _hpo(folder: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLEEP_EPOCH_S": "0.05", "FAIL_ONCE_MARKER": str(folder / "failed-once"),
           "TQDM_DISABLE": "1"}  # fmt: skip
    result = subprocess.run([sys.executable, "-m", "hpo", *args, "--storage", f"sqlite:///{folder / 'optuna.db'}"],
                            cwd=folder, env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _runs(client: MlflowClient, experiment: str) -> tuple[object, list]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no MLflow experiment {experiment!r}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("hpo.role") == "study"]
    assert len(parents) == 1, f"expected one parent run, got {len(parents)}"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return parents[0], sorted(children, key=lambda r: int(r.data.tags["optuna.trial"]))


def test_a_study_is_a_parent_run_with_a_child_per_trial(server, tmp_path):
    """Parameters, per-epoch metrics with the epoch as step, state, fail reason and files."""
    spec = _sleep_spec(
        tmp_path, "tracked", "tests.hpo_tests.tracking_trainer:fail_first", server, n_trials=3
    )
    out = _hpo(tmp_path, "study", str(spec), "--data-dir", str(tmp_path)).stdout
    assert f"trials logged to MLflow at {server}" in out

    client = MlflowClient(tracking_uri=server)
    parent, children = _runs(client, "tracked")
    assert [c.data.tags["optuna.state"] for c in children] == [
        "FAIL",
        "COMPLETE",
        "COMPLETE",
        "COMPLETE",
    ]
    failed, *complete = children
    assert (
        failed.info.status == "FAILED" and "deliberate failure" in failed.data.tags["fail_reason"]
    )
    for child in complete:
        assert child.info.status == "FINISHED" and float(child.data.params["learning_rate"]) > 0
        history = client.get_metric_history(child.info.run_id, "macro_f1")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(
            range(1, EPOCHS + 1)
        )
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {
            "metrics.json",
            "epochs.csv",
            "train.log",
        }
    assert parent.info.status == "FINISHED" and parent.data.params["objective"] == "macro_f1"
    assert parent.data.params["data.n_train"] == "36" and parent.data.params[
        "search.learning_rate"
    ].startswith("{")
    assert len(client.get_metric_history(parent.info.run_id, "best_macro_f1")) == 3
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "study")} == {
        "study/spec.yaml",
        "study/data_profile.json",
        "study/split.csv",
    }

    # Resumed with more trials: the same parent run, one more child.
    _hpo(tmp_path, "study", str(spec), "--data-dir", str(tmp_path), "--n-trials", "4")
    again, children = _runs(client, "tracked")
    assert again.info.run_id == parent.info.run_id and len(children) == 5


def test_parallel_workers_share_one_parent_run(server, tmp_path):
    spec = _sleep_spec(tmp_path, "tracked-workers", SLEEP, server, n_trials=4)
    _hpo(tmp_path, "workers", str(spec), "-n", "2", "--data-dir", str(tmp_path))
    parent, children = _runs(MlflowClient(tracking_uri=server), "tracked-workers")
    assert [c.data.tags["optuna.state"] for c in children] == ["COMPLETE"] * 4
    assert (
        len({c.data.tags["hpo.worker"] for c in children}) == 2
    )  # logged by whichever worker ran the trial
    assert parent.info.status == "FINISHED"


def test_retrained_figures_go_on_the_parent_run(server, tmp_path):
    """`hpo retrain`'s metrics.json, as hpo.tracking.mlflow_runs.log_retrained logs it."""
    from hpo import stored
    from hpo.spec import load_spec
    from hpo.study import open_study
    from hpo.tracking.mlflow_runs import MlflowTracker, log_retrained

    spec = load_spec(str(_sleep_spec(tmp_path, "tracked-retrain", SLEEP, server, n_trials=1)))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(spec, url)
    parent = MlflowTracker.open(study, spec, server, None, url).parent
    metrics = stored.BestMetrics(
        study="tracked-retrain", trial=0, params={}, epochs=1, task="multi_label", labels=["a", "b"], thresholds={"a": 0.3, "b": 0.4},
        objective=stored.ObjectiveFigures(metric="macro_f1", trial_value=0.5, retrained_val_value=0.5, baseline_val_value=0.1),
        val={}, baseline_val={}, test=stored.TestFigures(default={"macro_f1": 0.41, "per_label": {}}, tuned={"macro_f1": 0.47}),
        n_test=12, texts_per_s=100.0, seconds_per_1000_texts=10.0, model_size_mb=1.0,
    )  # fmt: skip
    best = tmp_path / "best"
    best.mkdir()
    metrics.write(best)
    client = MlflowClient(tracking_uri=server)
    assert log_retrained(study, metrics, best) == [parent]
    run = client.get_run(parent)
    assert (
        run.data.metrics["test.macro_f1"] == 0.41
        and run.data.metrics["test.tuned.macro_f1"] == 0.47
    )
    assert "best/metrics.json" in {a.path for a in client.list_artifacts(parent, "best")}


def test_a_tiny_real_model_logs_its_curves_to_the_default_sqlite_file(
    tmp_path, monkeypatch, capsys
):
    """A bare --mlflow: runs/mlflow.db beside the study database, browsable with `mlflow ui`."""
    from hpo.cli import main

    monkeypatch.chdir(tmp_path)
    data = slice_dataset(tmp_path / "data", "ucc", {"train": 48, "val": 48, "test": 24})
    path = tiny_ucc_spec(
        tmp_path / "tiny.yaml",
        n_trials=1,
        search_space={"learning_rate": {"type": "categorical", "choices": [1e-3]}},
    )
    assert (
        main(
            [
                "study",
                str(path),
                "--data-dir",
                str(data),
                "--mlflow",
                "--storage",
                "sqlite:///runs/optuna.db",
            ]
        )
        == 0
    )
    assert "trials logged to MLflow at sqlite:///runs/mlflow.db" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    _, [child] = _runs(client, "tiny-ucc")
    for key in ("macro_f1", "tuned_macro_f1", "train_loss", "val_loss", f"{UCC_LABELS[0]}.f1"):
        assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == [1, 2], key
    assert {"pr_curves.svg", "confusion.svg"} <= {
        a.path for a in client.list_artifacts(child.info.run_id)
    }


def test_an_untracked_study_never_imports_mlflow():
    code = ("import sys, hpo.cli, hpo.study.loop, hpo.trial.objective, hpo.tracking\n"
            "print('mlflow' in sys.modules)")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.stdout.strip() == "False", result.stderr
