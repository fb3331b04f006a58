"""The files of a saved model and their sha256 hashes: a model directory is data, checked before use.

A saved model lists every file it is made of with its hash. Loading copies exactly those files,
hashing them on the way, into a private folder and loads from there: a file that does not match
its hash is refused, and anything else in the directory (a stray `features.joblib`, a
`pytorch_model.bin`, a Python file) is never opened. Only formats that hold data and cannot run
code on load are ever listed: JSON, safetensors, plain-text vocabularies and sentencepiece models.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path, PurePosixPath

from trainers.errors import TrainerError

DATA_SUFFIXES = (".json", ".safetensors", ".txt", ".model", ".jinja")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20


def file_hashes(directory: Path) -> dict[str, str]:
    """Every file under `directory` (relative POSIX path → sha256); refuses a file whose format
    could run code when loaded, so no such file is ever saved as part of a model."""
    hashes = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        check_name(name, directory)
        hashes[name] = sha256_of(path)
    return hashes


def check_name(name: str, directory: Path) -> None:
    """A listed file is a plain relative path inside the model directory, in a data-only format."""
    parts = PurePosixPath(name).parts
    if (
        not parts
        or name.startswith("/")
        or "\\" in name
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise TrainerError(
            f"{directory}: file name {name!r} in the model's file list leaves the directory; retrain the model"
        )
    if not name.endswith(DATA_SUFFIXES):
        raise TrainerError(
            f"{directory}: {name!r} is not in a data-only format ({', '.join(DATA_SUFFIXES)}); it is not loaded"
        )


def check_hash(name: str, digest: object, directory: Path) -> None:
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise TrainerError(
            f"{directory}: the file list gives {name!r} no valid sha256 ({digest!r}); retrain the model"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def stage_verified(directory: Path, files: dict[str, str], staging: Path) -> Path:
    """Copy the listed files into `staging`, hashing what is copied; returns `staging`. What is
    loaded from there is exactly what was hashed, and nothing unlisted is there."""
    for name, expected in files.items():
        check_name(name, directory)
        check_hash(name, expected, directory)
        source, target = directory / name, staging / name
        if not source.is_file():
            raise TrainerError(
                f"{source}: missing, but the model's labels.json lists it; copy the whole model directory again or retrain"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        if _copy_hashing(source, target) != expected:
            raise TrainerError(
                f"{source}: its content does not match the sha256 that labels.json records; the model directory was changed "
                "or copied incompletely: copy it again or retrain"
            )
    return staging


def _copy_hashing(source: Path, target: Path) -> str:
    digest = hashlib.sha256()
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                dst.write(chunk)
    except OSError as e:
        raise TrainerError(f"{source}: cannot be read ({e.strerror or e})") from None
    return digest.hexdigest()


def move_into(staging: Path, directory: Path) -> None:
    """Move every file of `staging` into `directory`, replacing files of the same name."""
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        target = directory / path.relative_to(staging)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(target))
