"""`hpo predict`: label new texts with a retrained model and its validation-chosen thresholds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.errors import HpoError


def read_texts(texts: list[str] | None, file: str | None, text_column: str | None, default_column: str) -> list[str]:
    if texts:
        return list(texts)
    from trainers.data import read_csv

    frame = read_csv(Path(file))  # type: ignore[arg-type]  # argparse makes one of the two required
    column = text_column or default_column
    if column not in frame.columns:
        raise HpoError(f"{file}: no column {column!r}; columns are {list(frame.columns)}; pick one with --text-column")
    return frame[column].tolist()


def label_records(probs: np.ndarray, texts: list[str], task: str, names: tuple[str, ...], thresholds: np.ndarray | None) -> list[dict]:
    """One record per text: its probabilities and its labels (multi-label: every label at or
    above its threshold; multi-class: the most probable class)."""
    records = []
    for text, p in zip(texts, probs, strict=True):
        record: dict = {"text": text}
        if task == "multi_label":
            cut = thresholds if thresholds is not None else 0.5
            record["labels"] = [n for n, on in zip(names, p >= cut, strict=True) if on]
        else:
            record["label"] = names[int(p.argmax())]
        record["probabilities"] = {n: round(float(x), 6) for n, x in zip(names, p, strict=True)}
        records.append(record)
    return records


def write_records(records: list[dict], out: str | None) -> None:
    """JSON lines to stdout or a .jsonl file; a .csv file gets one column per probability."""
    if out and Path(out).suffix == ".csv":
        rows = []
        for r in records:
            label = "; ".join(r["labels"]) if "labels" in r else r["label"]
            rows.append({"text": r["text"], "labels" if "labels" in r else "label": label, **{f"p_{k}": v for k, v in r["probabilities"].items()}})
        pd.DataFrame(rows).to_csv(out, index=False)
        return
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if out:
        Path(out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def predict(
    best_dir: str, texts: list[str] | None, file: str | None, text_column: str | None, out: str | None, variant: str | None = None
) -> int:
    """Label texts with a saved model: runs/<study>/best, one of its deployment variants
    (`variant`), or a variant's own directory; every one applies its validation-chosen thresholds."""
    from hpo.deploy.runtime import load_predictor

    model = load_predictor(best_dir, variant)
    inputs = read_texts(texts, file, text_column, model.labels.text_column)
    probs = model.probabilities(inputs)
    records = label_records(probs, inputs, model.labels.task, model.labels.names, model.thresholds)
    write_records(records, out)
    return len(records)
