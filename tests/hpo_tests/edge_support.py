"""Helpers for the edge tests: run the CLI in-process or as `python -m hpo`, and check that a
refusal is exactly one line, exit code 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from testing.data import REPO, UCC_LABELS, slice_dataset
from testing.specs import tiny_architecture, tiny_ucc_spec

# Every label has a positive in the first 48 val rows of UCC; train has fewer labels' positives.
ROWS = {"train": 64, "val": 48, "test": 48}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def refused(self, *fragments: str) -> str:
        """Assert one `error: …` line on stderr, exit code 2, no traceback; returns the line."""
        assert self.code == 2, (self.code, self.out, self.err)
        assert "Traceback" not in self.out + self.err, self.err
        lines = [line for line in self.err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), self.err
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
        return lines[0]


def cli(capsys, *argv: str) -> Ran:
    """`hpo ARGV` in this process (argparse's refusals exit through SystemExit)."""
    from hpo.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def hpo(
    *argv: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: float = 300
) -> Ran:
    """`python -m hpo ARGV` in a fresh interpreter, importing this checkout."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "hpo", *map(str, argv)],
        check=False,
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


def edge_data(folder: Path) -> Path:
    return slice_dataset(folder, "ucc", ROWS)


def edge_spec(
    path: Path, trainer: str = "tests.hpo_tests.edge_trainers:steady", **overrides
) -> Path:
    """A tiny UCC spec whose trials run one of tests.hpo_tests.edge_trainers (no torch)."""
    overrides.setdefault("training", {"epochs": 1})
    return tiny_ucc_spec(path, trainer=trainer, **overrides)


def rewrite(path: Path, change) -> Path:
    """Apply `change` to the spec's YAML mapping in place."""
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


TEXTS = [
    "You are an idiot and everyone knows it!",
    "Thanks, that is a helpful point.",
    "Why would anyone believe this?",
    "NO. Just no.",
]


def saved_tiny_model(folder: Path, features: bool = False) -> Path:
    """A saved tiny BERT: multi-label UCC labels at thresholds 0.5, or (features) a multi-class
    model with hand-made features."""
    import numpy as np

    from trainers.checkpoint import LabelInfo, save_best
    from trainers.config import Hyperparams, ModelConfig
    from trainers.features import TextFeatureExtractor
    from trainers.fusion import build_model
    from trainers.model import load_tokenizer

    cfg = ModelConfig(from_config=tiny_architecture(), max_length=32)
    tokenizer = load_tokenizer(cfg)
    if features:
        extractor = TextFeatureExtractor(tfidf_top_n=5).fit(TEXTS)
        hyper = Hyperparams(features=True, pooling="mean", feature_dim=4, text_projection_dim=8)
        names = ("Negative", "Neutral", "Positive")
        model = build_model(
            cfg,
            "multi_class",
            names,
            np.array([0, 1, 2, 1]),
            hyper,
            extractor.n_features,
            tokenizer.pad_token_id,
        )
        return save_best(
            folder,
            model.eval(),
            tokenizer,
            LabelInfo("multi_class", names, "comment", 32),
            extractor=extractor,
        )
    names = tuple(UCC_LABELS)
    model = build_model(
        cfg,
        "multi_label",
        names,
        np.zeros((4, len(names)), np.float32),
        Hyperparams(),
        0,
        tokenizer.pad_token_id,
    )
    return save_best(
        folder,
        model.eval(),
        tokenizer,
        LabelInfo("multi_label", names, "comment", 32),
        np.full(len(names), 0.5),
    )
