"""Where studies and their artifacts are stored: URLs, database engines, artifact dirs.

Knows nothing of models or training; depends only on optuna and sqlalchemy.
"""

from storage.artifacts import artifact_store, default_artifact_dir, run_dir
from storage.batched_writes import WriteBatch
from storage.errors import StorageError
from storage.rdb import open_storage, with_retries
from storage.urls import (
    DEFAULT_STORAGE_URL,
    proxy_address,
    redact,
    require_existing_database,
    resolve_storage_url,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "StorageError",
    "WriteBatch",
    "artifact_store",
    "default_artifact_dir",
    "open_storage",
    "proxy_address",
    "redact",
    "require_existing_database",
    "resolve_storage_url",
    "run_dir",
    "with_retries",
]
