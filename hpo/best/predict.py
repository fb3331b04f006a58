"""`hpo predict`: label new texts with a retrained model and its validation-chosen thresholds."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hpo.errors import HpoError

OUT_SUFFIXES = (".csv", ".jsonl")


def read_texts(
    texts: list[str] | None, file: str | None, text_column: str | None, default_column: str
) -> list[str]:
    """The texts to label; an empty one is refused, never labelled."""
    if texts is not None:
        empty = [i for i, t in enumerate(texts, start=1) if not t.strip()]
        if empty:
            raise HpoError(
                f"--text number {empty[0]} is empty; give each --text some words to label"
            )
        return list(texts)
    from trainers.data import read_csv

    if not Path(file).is_file():  # type: ignore[arg-type]
        raise HpoError(
            f"--file {file}: {'is a folder' if Path(file).is_dir() else 'no such file'}; give a CSV of texts"
        )  # type: ignore[arg-type]
    frame = read_csv(Path(file))  # type: ignore[arg-type]  # argparse makes one of the two required
    column = text_column or default_column
    if column not in frame.columns:
        raise HpoError(
            f"{file}: no column {column!r}; columns are {list(frame.columns)}; pick one with --text-column"
        )
    if frame.empty:
        raise HpoError(f"{file}: no rows below the header; nothing to label")
    blank = [
        i for i, t in enumerate(frame[column], start=2) if not t.strip()
    ]  # line 1 is the header
    if blank:
        raise HpoError(
            f"{file}: column {column!r} is empty on {len(blank)} row(s), first on line {blank[0]}; remove or fill them"
        )
    return frame[column].tolist()


def check_out(out: str | None) -> None:
    """Refuse an output file that cannot be written before the model is loaded."""
    if out is None:
        return
    path = Path(out)
    if path.suffix not in OUT_SUFFIXES:
        raise HpoError(f"--out {out}: give a file name ending in {' or '.join(OUT_SUFFIXES)}")
    if path.is_dir():
        raise HpoError(f"--out {out}: is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise HpoError(f"--out {out}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise HpoError(f"--out {out}: not writable; choose another file")


def label_records(
    probs: np.ndarray,
    texts: list[str],
    task: str,
    names: tuple[str, ...],
    thresholds: np.ndarray | None,
) -> list[dict]:
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
            rows.append(
                {
                    "text": r["text"],
                    "labels" if "labels" in r else "label": label,
                    **{f"p_{k}": v for k, v in r["probabilities"].items()},
                }
            )
        pd.DataFrame(rows).to_csv(out, index=False)
        return
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if out:
        Path(out).write_text(lines, encoding="utf-8")
    else:
        sys.stdout.write(lines)


def _write(records: list[dict], out: str | None) -> None:
    try:
        write_records(records, out)
    except OSError as e:
        raise HpoError(f"--out {out}: cannot be written ({e.strerror or e})") from None


def predict(
    best_dir: str,
    texts: list[str] | None,
    file: str | None,
    text_column: str | None,
    out: str | None,
    variant: str | None = None,
) -> int:
    """Label texts with a saved model: runs/<study>/best, one of its deployment variants
    (`variant`), or a variant's own directory; every one applies its validation-chosen thresholds.
    The output path is checked before the model is loaded."""
    from hpo.deploy.runtime import load_predictor

    check_out(out)
    _refuse_a_study_name(best_dir)
    model = load_predictor(best_dir, variant, quiet=True)
    inputs = read_texts(texts, file, text_column, model.labels.text_column)
    probs = model.probabilities(inputs)
    records = label_records(probs, inputs, model.labels.task, model.labels.names, model.thresholds)
    _write(records, out)
    return len(records)


def _refuse_a_study_name(best_dir: str) -> None:
    """A study's name given where its model directory is meant: say where the model is."""
    if Path(best_dir).is_dir():
        return
    from storage.artifacts import run_dir
    from storage.errors import StorageError

    try:
        model_dir = run_dir(str(best_dir)) / "best"  # where `hpo retrain` writes it
    except StorageError:
        return  # not a plain study name: the loader says what is wrong with the path
    if model_dir.is_dir():
        raise HpoError(
            f"{best_dir}: not a model directory; study {best_dir}'s retrained model is in {model_dir}: `hpo predict {model_dir} …`"
        )
