"""Where checkpoints, reports and other per-study files live on disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

from optuna.artifacts import FileSystemArtifactStore
from sqlalchemy.engine import make_url

from storage.errors import StorageError

_DEFAULT_ARTIFACT_DIR = Path("runs/artifacts")


def artifact_store(root: str | Path) -> FileSystemArtifactStore:
    """Return an Optuna artifact store under `root`, creating it (Optuna does not)."""
    path = Path(root)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the artifact folder {path} ({e.strerror or e}); set HPO_ARTIFACT_DIR (or --artifact-dir) to a writable folder"
        ) from None
    return FileSystemArtifactStore(base_path=path)


def default_artifact_dir(storage_url: str) -> Path:
    """Artifacts sit next to a SQLite file; other backends use env HPO_ARTIFACT_DIR or runs/."""
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            return Path(url.database).parent / "artifacts"
        return _DEFAULT_ARTIFACT_DIR
    return Path(os.environ.get("HPO_ARTIFACT_DIR") or _DEFAULT_ARTIFACT_DIR)


_FOLDER_NAME = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.-]*"
)  # a spec's `name`: one plain path component


def run_dir(study_name: str, root: str | Path = "runs") -> Path:
    """Return the directory for one study's local files. The name comes from storage, which
    anyone with access may have written: only a plain name, as a spec's, becomes a folder."""
    if not _FOLDER_NAME.fullmatch(study_name):
        raise StorageError(
            f"study name {study_name!r} cannot be used as a folder name (letters, digits, _ . - only)"
        )
    return Path(root) / study_name
