"""What the splits must hold for a study to mean anything, and what merely looks wrong.

Refused (raises): a split with no rows, a label with no positive in val (its F1 is 0 in every
trial and it drops out of macro ROC-AUC), a label positive on every val row, a class absent from
val. Warned (returned): a label or class absent from train (the model can only learn never to
predict it) or from test, few val positives, a class under 1 %, val or test that is the same
data as train, rows dropped for empty text.
"""

from __future__ import annotations

import numpy as np

from hpo.errors import HpoError
from hpo.spec import StudySpec

FEW_VAL_POSITIVES = 5
RARE_CLASS_SHARE = 0.01


def check_rows(spec: StudySpec, split: str, path: str, n_rows: int, n_dropped: int) -> list[str]:
    if n_rows == 0:
        dropped = (
            f" ({n_dropped} rows had an empty {spec.data.text_column!r})" if n_dropped else ""
        )
        raise HpoError(
            f"{path}: the {split} split has no rows{dropped}; a study needs labelled {split} texts"
        )
    return (
        [f"{path}: {n_dropped} row(s) with an empty {spec.data.text_column!r} are left out"]
        if n_dropped
        else []
    )


def check_labels(spec: StudySpec, split: str, path: str, labels: np.ndarray) -> list[str]:
    """Refuse what cannot work in this split; return warnings for what merely looks wrong."""
    if spec.task == "multi_label":
        return _multi_label(spec.data.label_columns or [], split, path, labels)
    return _multi_class(spec.data.class_names or [], split, path, labels)


def _multi_label(names: list[str], split: str, path: str, labels: np.ndarray) -> list[str]:
    positives = labels.sum(axis=0).astype(int)
    n = len(labels)
    none = [name for name, k in zip(names, positives, strict=True) if k == 0]
    if none and split == "train":
        return [
            f"{path}: label(s) {none} have no positive training row; the model can only learn never to predict them"
        ]
    if (
        none and split == "test"
    ):  # read once, after the study: an odd test split is worth a word, not a refusal
        return [
            f"{path}: label(s) {none} have no positive test row; their test F1 and ROC-AUC are undefined"
        ]
    if none:
        raise HpoError(
            f"{path}: label(s) {none} have no positive row in val; every trial would score them F1 0 and macro ROC-AUC "
            "would skip them: add positives to val or drop the label"
        )
    if split == "val":
        every = [name for name, k in zip(names, positives, strict=True) if k == n]
        if every:
            raise HpoError(
                f"{path}: label(s) {every} are positive on every val row; ROC-AUC and thresholds need negatives too"
            )
        few = {
            name: int(k) for name, k in zip(names, positives, strict=True) if k < FEW_VAL_POSITIVES
        }
        if few:
            return [
                f"{path}: few val positives {few}: their F1 and thresholds rest on a handful of texts"
            ]
    return []


def _multi_class(names: list[str], split: str, path: str, labels: np.ndarray) -> list[str]:
    counts = np.bincount(labels, minlength=len(names))
    absent = [name for name, k in zip(names, counts, strict=True) if k == 0]
    if absent and split == "val":
        raise HpoError(
            f"{path}: class(es) {absent} never occur in val; add rows of them or drop them from data.class_names"
        )
    if absent:
        consequence = (
            "the model can only learn never to predict them"
            if split == "train"
            else "their test scores are undefined"
        )
        return [f"{path}: class(es) {absent} never occur in {split}; {consequence}"]
    rare = {
        name: round(float(k) / len(labels), 4)
        for name, k in zip(names, counts, strict=True)
        if k / len(labels) < RARE_CLASS_SHARE
    }
    return [f"{path}: class(es) under 1 % of {split}: {rare}"] if rare else []


def check_overlap(
    first: str, second: str, first_hash: str, second_hash: str, what: str
) -> list[str]:
    """Two splits with the same content: selection (or the test) would not be held out."""
    if first_hash == second_hash:
        return [f"{second} has the same content as {first}: {what}"]
    return []
