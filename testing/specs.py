"""Spec files and trainer configs for tiny runs: models of 2 layers and hidden size 32 built from
a config (random weights, the packaged MiniLM's tokenizer), or the sleep trainer's fake ones."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from testing.data import COVID_CLASSES, UCC_LABELS
from trainers.config import DataConfig, Hyperparams, ModelConfig, Task, TrainConfig

SLEEP_DATA = "sleep-data"


def tiny_architecture(model_type: str = "bert") -> dict[str, Any]:
    """Trains in seconds on a CPU."""
    return {
        "model_type": model_type,
        "num_hidden_layers": 2,
        "hidden_size": 32,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "vocab_size": 30522,
        "max_position_embeddings": 160,
    }


def tiny_train_config(
    data: DataConfig,
    *,
    task: Task = "multi_label",
    monitor: str = "macro_roc_auc",
    max_length: int = 32,
    model_type: str = "bert",
    device: str = "auto",
    **hyper: Any,
) -> TrainConfig:
    """The trainer's config for a tiny model on `data`; `hyper` sets Hyperparams fields."""
    return TrainConfig(
        task=task,
        data=data,
        model=ModelConfig(from_config=tiny_architecture(model_type), max_length=max_length),
        hyper=Hyperparams(**hyper),
        monitor=monitor,
        device=device,
    )


def tiny_ucc_spec(path: Path, **overrides: Any) -> Path:
    """A 2-trial random search over the learning rate of tiny multi-label models on UCC."""
    return write_spec(path, {
        "name": "tiny-ucc",
        "task": "multi_label",
        "data": {"dir": "ucc", "text_column": "comment", "label_columns": list(UCC_LABELS)},
        "model": {"from_config": tiny_architecture("bert"), "max_length": 64},
        "training": {"epochs": 2, "batch_size": 32},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 3e-3, "log": True}},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "n_trials": 2,
    }, overrides)  # fmt: skip


def tiny_covid_spec(path: Path, **overrides: Any) -> Path:
    """One trial of a tiny 5-class model on COVID tweets, small enough for its hand-made features."""
    return write_spec(path, {
        "name": "tiny-covid",
        "task": "multi_class",
        "data": {"dir": "covid-tweets", "text_column": "OriginalTweet", "label_column": "Sentiment", "class_names": list(COVID_CLASSES)},
        "model": {"from_config": tiny_architecture("bert"), "max_length": 64},
        "training": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "tfidf_top_n": 40, "feature_dim": 8, "text_projection_dim": 16},
        "search_space": {},
        "sampler": {"type": "random", "seed": 0},
        "pruner": {"type": "none"},
        "objective": {"metric": "accuracy"},
        "n_trials": 1,
    }, overrides)  # fmt: skip


def sleep_spec(folder: Path, **overrides: Any) -> Path:
    """A spec whose trials run testing.sleep_trainer (SLEEP_EPOCH_S per epoch, 3 epochs); its
    name is unique, as one PostgreSQL database holds every test's studies. The trainer reads no
    data, but `hpo study` and `hpo workers` check it first: a few rows are written beside it."""
    name = overrides.pop("name", f"w-{uuid.uuid4().hex[:8]}")
    _sleep_data(folder / SLEEP_DATA)
    return write_spec(folder / f"{name}.yaml", {
        "name": name,
        "task": "multi_label",
        "data": {"dir": SLEEP_DATA, "text_column": "text", "label_columns": ["a", "b"]},
        "training": {"epochs": 3},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True}},
        "sampler": {"type": "random"},
        "pruner": {"type": "none"},
        "trainer": "testing.sleep_trainer:train",
    }, overrides)  # fmt: skip


def _sleep_data(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = "text,a,b\nfirst text,1,0\nsecond text,0,1\nthird text,1,1\nfourth text,0,0\n"
    for split in ("train", "val", "test"):
        (folder / f"{split}.csv").write_text(rows)


def write_spec(path: Path, base: dict[str, Any], overrides: dict[str, Any]) -> Path:
    """`base` with `overrides` merged in, as YAML at `path`: mappings merge, anything else
    replaces, and each search-space parameter is replaced whole (as in spec variants)."""
    spec = _merged(base, overrides)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if key == "search_space":
            out[key] = {**base.get(key, {}), **value}
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            out[key] = _merged(base[key], value)
        else:
            out[key] = value
    return out


WORDS = [
    "river",
    "stone",
    "cloud",
    "paper",
    "music",
    "garden",
    "window",
    "orange",
    "silver",
    "forest",
]


def learnable_csv(path: Path, n: int, seed: int) -> Path:
    """Label 'a' iff the text says 'alpha' (said three times, so a 2-layer model from scratch learns it within a few epochs;
    two at once need more steps than a unit test should take). 'b' is noise, to keep two labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        a, b = rng.random() < 0.4, rng.random() < 0.3
        words = list(rng.choice(WORDS, size=rng.integers(3, 9))) + (["alpha"] * 3 if a else [])
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "a": int(a), "b": int(b)})
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def learnable_config(tmp_path: Path, model_type: str = "bert", **hyper: Any) -> TrainConfig:
    """A tiny model's config on a task it learns within a few epochs (learnable_csv)."""
    data = DataConfig(
        train_path=learnable_csv(tmp_path / "train.csv", 320, 0),
        val_path=learnable_csv(tmp_path / "val.csv", 120, 1),
        text_column="text",
        label_columns=("a", "b"),
        cache_dir=tmp_path / "cache",
    )
    settings = {"epochs": 3, "batch_size": 8, "learning_rate": 2e-3, "warmup_ratio": 0.1, **hyper}
    return tiny_train_config(data, model_type=model_type, **settings)
