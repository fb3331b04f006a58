"""What a trial leaves for the dashboard, uploaded through Optuna's artifact store.

Per trial: its per-epoch metrics (metrics.json in full; epochs.csv, which the dashboard shows as
a table), the best epoch's confusion matrices and precision-recall curves (SVG, shown inline),
and its training process's log (train.log, also for failed and pruned trials). The best epoch's
headline metrics also become flat user attributes ("val_macro_f1", ...), which the trials table
can sort and filter, and a trial note holds the per-epoch table. The nested "epoch_NNN" user
attributes stay as they are: the dashboard cuts them at 1024 characters, but reports read them.

Files are written to runs/<study>/trials/<number>/ (next to the store) and then uploaded.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import upload_artifact
from optuna_dashboard import save_note
from sklearn.metrics import average_precision_score, confusion_matrix, multilabel_confusion_matrix, precision_recall_curve

from hpo.spec import StudySpec
from hpo.svg_charts import Line, Matrix, lines_svg, matrices_svg
from hpo.trial_process import TrialOutcome
from storage import artifact_store, run_dir
from trainers.config import TrainConfig
from trainers.data import load_split
from trainers.metrics import OBJECTIVE_METRICS
from trainers.thresholds import apply_thresholds, best_f1_thresholds

log = logging.getLogger(__name__)
EPOCH_KEY = re.compile(r"^epoch_\d+$")
ARTIFACTS_PREFIX = "artifacts:"  # where optuna.artifacts keeps each artifact's metadata
ATTACHED = "**Attached after the study** (study artifacts):"
MIMETYPES = {".log": "text/plain", ".svg": "image/svg+xml", ".csv": "text/csv", ".json": "application/json"}


def trial_dir(artifact_dir: Path, study_name: str, number: int) -> Path:
    path = run_dir(study_name, root=Path(artifact_dir).parent) / "trials" / str(number)
    path.mkdir(parents=True, exist_ok=True)
    return path


class TrialRecorder:
    """Opens the trial's log before training; `finish` writes and uploads its files after."""

    def __init__(self, trial: optuna.Trial, spec: StudySpec, config: TrainConfig, artifact_dir: Path) -> None:
        self.trial, self.spec, self.config, self.artifact_dir = trial, spec, config, Path(artifact_dir)
        self.folder = trial_dir(self.artifact_dir, trial.study.study_name, trial.number)
        self.log_path = self.folder / "train.log"
        header = {"study": trial.study.study_name, "trial": trial.number, "params": trial.params}
        self.log_path.write_text(f"{json.dumps(header, default=str)}\nconfig {json.dumps(json.loads(config.to_json()))}\n")

    def finish(self, outcome: TrialOutcome | None) -> None:
        """Never raises: a plot that cannot be drawn must not fail a trial that trained."""
        try:
            self._finish(outcome)
        except Exception:  # noqa: BLE001
            log.warning("trial %d: could not record its artifacts", self.trial.number, exc_info=True)

    def _finish(self, outcome: TrialOutcome | None) -> None:
        history = epoch_history(self.trial.user_attrs)
        best_epoch = outcome.best_epoch if outcome else None
        files = [write_json(self.folder / "metrics.json", history), write_epochs_csv(self.folder / "epochs.csv", history)]
        probs = outcome.extras.get("val_probs") if outcome else None
        if probs is not None:
            files += self._plots(np.asarray(probs), best_epoch)
        files.append(self.log_path)
        best = next((m for m in history if m.get("epoch") == best_epoch), None)
        for key, value in headline(best or {}).items():
            self.trial.set_user_attr(key if key.endswith("_loss") else f"val_{key}", value)
        note = epochs_markdown(history, self.spec.objective.metric, best_epoch, outcome)
        save_note(self.trial, f"{note}\n\nArtifacts below: {', '.join(f.name for f in files)}.")
        upload(self.trial, files, self.artifact_dir)

    def _plots(self, probs: np.ndarray, best_epoch: int | None) -> list[Path]:
        labels = load_split(self.config.data.val_path, self.config.data, self.config.task).labels
        names = list(self.config.data.label_names)
        where = f"validation, epoch {best_epoch}"
        if self.spec.task == "multi_label":
            tuned = self.spec.objective.metric.startswith("tuned")
            matrices, rule = label_matrices(labels, probs, names, tuned)
            confusion = matrices_svg(f"Confusion per label ({where}, {rule})", matrices)
            curves = [pr_line(n, labels[:, j], probs[:, j]) for j, n in enumerate(names)]
        else:
            confusion = matrices_svg(f"Confusion matrix ({where}, argmax)", [class_matrix(labels, probs, names)], columns=1)
            onehot = np.eye(len(names), dtype=np.int64)[labels]
            curves = [pr_line(n, onehot[:, j], probs[:, j]) for j, n in enumerate(names)]
        (self.folder / "confusion.svg").write_text(confusion)
        pr = lines_svg(f"Precision-recall ({where})", [c for c in curves if c], "recall", "precision")
        (self.folder / "pr_curves.svg").write_text(pr)
        return [self.folder / "confusion.svg", self.folder / "pr_curves.svg"]


def epoch_history(user_attrs: dict) -> list[dict]:
    return [user_attrs[k] for k in sorted(k for k in user_attrs if EPOCH_KEY.match(k))]


def headline(metrics: dict) -> dict[str, float]:
    """The metrics a study can optimise, plus the training loss: finite scalars only."""
    keys = [*OBJECTIVE_METRICS, "train_loss"]
    return {k: float(metrics[k]) for k in keys if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k])}


def write_json(path: Path, history: list[dict]) -> Path:
    path.write_text(json.dumps(history, indent=1))
    return path


def write_epochs_csv(path: Path, history: list[dict]) -> Path:
    """One row per epoch: every scalar metric, then each label's F1."""
    rows = [_flat_row(m) for m in history]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _flat_row(metrics: dict) -> dict:
    row = {"epoch": metrics.get("epoch")}
    row.update({k: _round(v) for k, v in metrics.items() if not isinstance(v, dict)})
    row.update({f"f1[{name}]": _round(m.get("f1")) for name, m in (metrics.get("per_label") or {}).items()})
    return row


def _round(v):
    return round(v, 5) if isinstance(v, float) else v


def epochs_markdown(history: list[dict], metric: str, best_epoch: int | None, outcome: TrialOutcome | None) -> str:
    status = {"finished": "complete", "stopped": "pruned"}.get(outcome.status, outcome.status) if outcome else "interrupted"
    lines = [f"**{status}**" + (f", best epoch {best_epoch} by {metric}" if best_epoch else "")]
    if outcome and outcome.error:
        lines.append(f"\n`{outcome.error.splitlines()[0]}`")
    if history:
        columns = [c for c in dict.fromkeys([metric, *OBJECTIVE_METRICS, "train_loss", "epoch_time_s"]) if c in history[0]]
        lines += ["", "| epoch | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for m in history:
            mark = " ★" if m.get("epoch") == best_epoch else ""
            cells = ["-" if m.get(c) is None else f"{m[c]:.4g}" for c in columns]
            lines.append(f"| {m.get('epoch')}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def label_matrices(labels: np.ndarray, probs: np.ndarray, names: list[str], tuned: bool) -> tuple[list[Matrix], str]:
    y = labels.astype(np.int64)
    thresholds = best_f1_thresholds(y, probs) if tuned else np.full(len(names), 0.5)
    counts = multilabel_confusion_matrix(y, apply_thresholds(probs, thresholds))
    matrices = [Matrix(f"{n} (t={t:.2f})", c, ["no", "yes"], ["no", "yes"]) for n, c, t in zip(names, counts, thresholds, strict=True)]
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


def upload(study_or_trial: optuna.Trial | optuna.Study, paths: Iterable[Path], artifact_dir: Path) -> list[str]:
    store = artifact_store(artifact_dir)
    return [
        upload_artifact(artifact_store=store, file_path=str(p), study_or_trial=study_or_trial, mimetype=MIMETYPES.get(p.suffix))
        for p in paths
    ]


def attach_to_best_trial(study: optuna.Study, paths: Iterable[Path], artifact_dir: Path) -> list[str]:
    """Show files made after the study (report, retrained model's metrics) with its best trial.

    Optuna refuses changes to a finished trial, so they become study artifacts named
    "trial-<number>-<file>", linked from the best trial's note. Attaching a file of the same name
    again replaces its content under the same link. Returns the artifact ids (none without a
    complete trial).
    """
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        return []
    best = study.best_trial
    folder = trial_dir(artifact_dir, study.study_name, best.number)
    store = artifact_store(artifact_dir)
    ids = []
    for path in map(Path, paths):
        copy = folder / f"trial-{best.number}-{path.name}"
        if path.resolve() != copy.resolve():
            shutil.copyfile(path, copy)
        existing = _study_artifacts(study)
        if copy.name in existing:
            with copy.open("rb") as f:
                store.write(existing[copy.name], f)
            ids.append(existing[copy.name])
        else:
            ids.extend(upload(study, [copy], artifact_dir))
    attached = sorted((name, i) for name, i in _study_artifacts(study).items() if name.startswith(f"trial-{best.number}-"))
    links = "\n".join(f"- [{name}](/artifacts/{study._study_id}/{i})" for name, i in attached)
    _set_note_section(study, best._trial_id, f"{ATTACHED}\n{links}")
    return ids


def _study_artifacts(study: optuna.Study) -> dict[str, str]:
    """Filename → artifact id. Unlike optuna.artifacts.get_all_artifact_meta, skips the null
    entries the dashboard leaves when someone deletes an artifact there."""
    attrs = study._storage.get_study_system_attrs(study._study_id)
    metas = [json.loads(v) for k, v in attrs.items() if k.startswith(ARTIFACTS_PREFIX)]
    return {m["filename"]: m["artifact_id"] for m in metas if m}


def _set_note_section(study: optuna.Study, trial_id: int, section: str) -> None:
    """Replace the note's attached-files section (or add it), keeping what is above it."""
    # optuna_dashboard.save_note needs a live optuna.Trial, which cannot be made for a finished
    # trial; these are the functions it calls, with the same versioning.
    from optuna_dashboard._note import get_note_from_system_attrs, save_note_with_version

    storage = study._storage
    note = get_note_from_system_attrs(storage.get_study_system_attrs(study._study_id), trial_id)
    body = note["body"].split(f"\n\n{ATTACHED}")[0]
    save_note_with_version(storage, study._study_id, trial_id, note["version"] + 1, f"{body}\n\n{section}")
