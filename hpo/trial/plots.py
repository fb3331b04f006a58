"""The best epoch's plots of a trial, as SVG the dashboard shows inline: per-label (or class)
confusion at the thresholds its objective uses, and precision-recall curves on validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_curve,
)

from hpo.trial.charts import Line, Matrix, lines_svg, matrices_svg
from trainers.config import TrainConfig
from trainers.data import load_split
from trainers.thresholds import apply_thresholds, best_f1_thresholds


def best_epoch_plots(
    folder: Path, config: TrainConfig, probs: np.ndarray, best_epoch: int | None, metric: str
) -> list[Path]:
    """Write confusion.svg and pr_curves.svg into `folder` from the best epoch's validation
    probabilities; returns their paths."""
    labels = load_split(config.data.val_path, config.data, config.task).labels
    names = list(config.data.label_names)
    where = f"validation, epoch {best_epoch}"
    if config.task == "multi_label":
        matrices, rule = label_matrices(labels, probs, names, tuned=metric.startswith("tuned"))
        confusion = matrices_svg(f"Confusion per label ({where}, {rule})", matrices)
        curves = [pr_line(n, labels[:, j], probs[:, j]) for j, n in enumerate(names)]
    else:
        confusion = matrices_svg(
            f"Confusion matrix ({where}, argmax)", [class_matrix(labels, probs, names)], columns=1
        )
        onehot = np.eye(len(names), dtype=np.int64)[labels]
        curves = [pr_line(n, onehot[:, j], probs[:, j]) for j, n in enumerate(names)]
    (folder / "confusion.svg").write_text(confusion)
    pr = lines_svg(f"Precision-recall ({where})", [c for c in curves if c], "recall", "precision")
    (folder / "pr_curves.svg").write_text(pr)
    return [folder / "confusion.svg", folder / "pr_curves.svg"]


def label_matrices(
    labels: np.ndarray, probs: np.ndarray, names: list[str], tuned: bool
) -> tuple[list[Matrix], str]:
    y = labels.astype(np.int64)
    thresholds = best_f1_thresholds(y, probs) if tuned else np.full(len(names), 0.5)
    counts = multilabel_confusion_matrix(y, apply_thresholds(probs, thresholds))
    matrices = [
        Matrix(f"{n} (t={t:.2f})", c, ["no", "yes"], ["no", "yes"])
        for n, c, t in zip(names, counts, thresholds, strict=True)
    ]
    return matrices, "per-label F1-best thresholds" if tuned else "threshold 0.5"


def class_matrix(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> Matrix:
    counts = confusion_matrix(labels, probs.argmax(axis=1), labels=range(len(names)))
    return Matrix("", counts, names, names)


def pr_line(name: str, y: np.ndarray, p: np.ndarray) -> Line | None:
    """The label's precision-recall curve, its average precision in the legend; None without positives."""
    if y.sum() == 0:
        return None
    precision, recall, _ = precision_recall_curve(y, p)
    return Line(f"{name} (AP {average_precision_score(y, p):.2f})", recall, precision)
