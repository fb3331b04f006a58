"""Artifact and run directories."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.artifacts import download_artifact, upload_artifact

from storage import (
    DEFAULT_STORAGE_URL,
    StorageError,
    artifact_store,
    default_artifact_dir,
    open_storage,
    run_dir,
)


def test_default_artifact_dir_follows_the_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_ARTIFACT_DIR", raising=False)
    assert default_artifact_dir(DEFAULT_STORAGE_URL) == Path("runs/artifacts")
    assert default_artifact_dir("sqlite:////srv/hpo/optuna.db") == Path("/srv/hpo/artifacts")
    assert default_artifact_dir("sqlite:///:memory:") == Path("runs/artifacts")
    pg = "postgresql+psycopg://hpo:pw@db/hpo"
    assert default_artifact_dir(pg) == Path("runs/artifacts")
    monkeypatch.setenv("HPO_ARTIFACT_DIR", "/mnt/shared/artifacts")
    assert default_artifact_dir(pg) == Path("/mnt/shared/artifacts")


def test_run_dir() -> None:
    assert run_dir("sst2-minilm") == Path("runs/sst2-minilm")
    assert run_dir("s", root="/tmp/r") == Path("/tmp/r/s")
    for bad in ["", "..", "a/b"]:
        with pytest.raises(StorageError):
            run_dir(bad)


def test_artifact_store_round_trip(tmp_path: Path) -> None:
    store = artifact_store(tmp_path / "deep" / "artifacts")
    assert (tmp_path / "deep" / "artifacts").is_dir()
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db", heartbeat_interval=None)
    trial = optuna.create_study(storage=storage).ask()
    source = tmp_path / "metrics.json"
    source.write_text('{"f1": 0.9}')
    artifact_id = upload_artifact(
        artifact_store=store, file_path=str(source), study_or_trial=trial
    )
    download_artifact(artifact_store=store, artifact_id=artifact_id, file_path=str(tmp_path / "o"))
    assert (tmp_path / "o").read_text() == '{"f1": 0.9}'
