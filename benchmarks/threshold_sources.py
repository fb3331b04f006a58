"""Thresholds tuned on val against cross-fitted ones (out-of-fold over train + val), scored on
the half of val neither route saw (each half in turn): trainers.crossfit.compare_threshold_sources.

    python -m benchmarks.threshold_sources [--quick] [--train-rows N] [--folds K] [--epochs E]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from testing.data import UCC_LABELS, add_data_dir_argument


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.threshold_sources", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--quick", action="store_true", help="600 training comments, 2 folds, max length 64"
    )
    parser.add_argument(
        "--train-rows",
        type=int,
        default=None,
        help="first N rows of UCC train (default all; 600 with --quick)",
    )
    parser.add_argument(
        "--folds", type=int, default=None, help="cross-fitting folds (default 4; 2 with --quick)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    add_data_dir_argument(parser)
    args = parser.parse_args(argv)
    import pandas as pd

    from trainers.config import PACKAGED_MINILM, DataConfig, Hyperparams, ModelConfig, TrainConfig
    from trainers.crossfit import compare_threshold_sources

    rows = args.train_rows or (600 if args.quick else None)
    folds = args.folds or (2 if args.quick else 4)
    with tempfile.TemporaryDirectory(prefix="threshold-sources-") as tmp:
        src = args.data_dir / "ucc"
        train = pd.read_csv(src / "train.csv", dtype=str, keep_default_na=False)
        (train.head(rows) if rows else train).to_csv(Path(tmp) / "train.csv", index=False)
        config = TrainConfig(
            task="multi_label",
            data=DataConfig(
                train_path=Path(tmp) / "train.csv",
                val_path=src / "val.csv",
                test_path=None,
                text_column="comment",
                label_columns=UCC_LABELS,
            ),
            model=ModelConfig(name_or_path=PACKAGED_MINILM, max_length=64 if args.quick else 128),
            hyper=Hyperparams(
                epochs=args.epochs,
                batch_size=32,
                learning_rate=1e-4,
                pooling="mean",
                head_lr_multiplier=5.0,
            ),
            monitor="macro_roc_auc",
            monitor_mode="max",
        )
        start = time.perf_counter()
        result = compare_threshold_sources(config, folds)
    print(
        f"threshold_sources: MiniLM, {rows or len(train)} train rows, {args.epochs} epoch(s), {folds} folds, {time.perf_counter() - start:.0f}s"
    )
    for i, half in enumerate(result.per_half):
        print(
            f"  held-out val half {i}: macro F1 at val-tuned {half['val']:.4f}, at cross-fitted {half['cross_fit']:.4f}"
        )
    print(
        f"  mean: val-tuned {result.val:.4f}, cross-fitted {result.cross_fit:.4f}, difference {result.cross_fit - result.val:+.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
