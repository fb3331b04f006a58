"""Shared test helpers: tiny models built from configs, small slices of the real data sets."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
UCC_LABELS = ["antagonize", "condescending", "dismissive", "generalisation", "generalisation_unfair", "healthy", "hostile", "sarcastic"]
COVID_CLASSES = ["Extremely Negative", "Negative", "Neutral", "Positive", "Extremely Positive"]


def tiny_architecture(model_type: str = "bert") -> dict:
    """2 layers, hidden 32: trains in seconds; the tokenizer comes from the packaged MiniLM."""
    return {"model_type": model_type, "num_hidden_layers": 2, "hidden_size": 32, "num_attention_heads": 2,
            "intermediate_size": 64, "vocab_size": 30522, "max_position_embeddings": 160}


def data_dir() -> Path:
    path = Path(os.environ.get("DATA_DIR", REPO.parent / "shared" / "data"))
    if not (path / "ucc" / "train.csv").is_file():
        message = f"real data not found under {path}; set DATA_DIR"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must not pass by skipping
        pytest.skip(message)
    return path


def slice_dataset(dest: Path, name: str, rows: dict[str, int]) -> Path:
    """Copy the first rows of each split of a real data set (keeping its encoding and BOM)."""
    src = data_dir() / name
    out = dest / name
    out.mkdir(parents=True, exist_ok=True)
    for split, n in rows.items():
        frame = pd.read_csv(src / f"{split}.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)
        frame.head(n).to_csv(out / f"{split}.csv", index=False, encoding="utf-8-sig" if name == "covid-tweets" else "utf-8")
    return dest


def tiny_ucc_spec(path: Path, **overrides) -> Path:
    spec = {
        "name": "tiny-ucc",
        "task": "multi_label",
        "data": {"dir": "ucc", "text_column": "comment", "label_columns": UCC_LABELS},
        "model": {"from_config": tiny_architecture("bert"), "max_length": 64},
        "training": {"epochs": 2, "batch_size": 32},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "n_trials": 2,
    }
    _merge(spec, overrides)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _merge(base: dict, overrides: dict) -> None:
    for k, v in overrides.items():
        if k == "search_space":  # each parameter's definition is replaced whole, as in spec variants
            base[k] = {**base[k], **v}
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
