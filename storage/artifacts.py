"""Where checkpoints, reports and other per-study files live on disk."""

from __future__ import annotations

import os
from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore
from sqlalchemy.engine import make_url

from storage.errors import StorageError

_DEFAULT_ARTIFACT_DIR = Path("runs/artifacts")


def artifact_store(root: str | Path) -> FileSystemArtifactStore:
    """Return an Optuna artifact store under `root`, creating it (Optuna does not)."""
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(base_path=path)


def default_artifact_dir(storage_url: str) -> Path:
    """Artifacts sit next to a SQLite file; other backends use env HPO_ARTIFACT_DIR or runs/."""
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            return Path(url.database).parent / "artifacts"
        return _DEFAULT_ARTIFACT_DIR
    return Path(os.environ.get("HPO_ARTIFACT_DIR") or _DEFAULT_ARTIFACT_DIR)


def run_dir(study_name: str, root: str | Path = "runs") -> Path:
    """Return the directory for one study's local files; the name must be a single component."""
    if study_name in {"", ".", ".."} or "/" in study_name or os.sep in study_name:
        raise StorageError(f"study name {study_name!r} cannot be used as a directory name")
    return Path(root) / study_name
