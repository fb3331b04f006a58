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
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import optuna
from optuna.artifacts import upload_artifact

from hpo import stored
from hpo.dashboard.trial_note import TrialNote
from hpo.spec import StudySpec
from hpo.trial.process import TrialOutcome
from storage import artifact_store, run_dir
from trainers.config import TrainConfig
from trainers.objectives import OBJECTIVE_METRICS

log = logging.getLogger(__name__)
MIMETYPES = {
    ".log": "text/plain",
    ".svg": "image/svg+xml",
    ".csv": "text/csv",
    ".json": "application/json",
}


def trial_dir(artifact_dir: Path, study_name: str, number: int) -> Path:
    path = run_dir(study_name, root=Path(artifact_dir).parent) / "trials" / str(number)
    path.mkdir(parents=True, exist_ok=True)
    return path


class TrialRecorder:
    """Opens the trial's log before training; `finish` writes and uploads its files after."""

    def __init__(
        self, trial: optuna.Trial, spec: StudySpec, config: TrainConfig, artifact_dir: Path
    ) -> None:
        self.trial, self.spec, self.config, self.artifact_dir = (
            trial,
            spec,
            config,
            Path(artifact_dir),
        )
        self.folder = trial_dir(self.artifact_dir, trial.study.study_name, trial.number)
        self.log_path = self.folder / "train.log"
        header = {"study": trial.study.study_name, "trial": trial.number, "params": trial.params}
        self.log_path.write_text(
            f"{json.dumps(header, default=str)}\nconfig {json.dumps(json.loads(config.to_json()))}\n"
        )

    def finish(self, outcome: TrialOutcome | None) -> None:
        """Never raises: a plot that cannot be drawn must not fail a trial that trained."""
        try:
            self._finish(outcome)
        except Exception:
            log.warning(
                "trial %d: could not record its artifacts", self.trial.number, exc_info=True
            )

    def _finish(self, outcome: TrialOutcome | None) -> None:
        history = stored.epoch_history(self.trial.user_attrs)
        best_epoch = outcome.best_epoch if outcome else None
        files = [
            write_json(self.folder / "metrics.json", history),
            write_epochs_csv(self.folder / "epochs.csv", history),
        ]
        probs = outcome.extras.get("val_probs") if outcome else None
        if probs is not None:
            from hpo.trial.plots import (
                best_epoch_plots,
            )  # scikit-learn: only for trainers that return probabilities

            files += best_epoch_plots(
                self.folder, self.config, np.asarray(probs), best_epoch, self.spec.objective.metric
            )
        files.append(self.log_path)
        best = next((m for m in history if m.get("epoch") == best_epoch), None)
        for key, value in headline(best or {}).items():
            self.trial.set_user_attr(stored.headline_key(key), value)
        note = epochs_markdown(history, self.spec.objective.metric, best_epoch, outcome)
        TrialNote(self.trial).save(
            f"{note}\n\nArtifacts below: {', '.join(f.name for f in files)}."
        )
        upload(self.trial, files, self.artifact_dir)


def headline(metrics: dict) -> dict[str, float]:
    """The metrics a study can optimise, plus the training loss: finite scalars only."""
    keys = [*OBJECTIVE_METRICS, "train_loss"]
    return {
        k: float(metrics[k])
        for k in keys
        if isinstance(metrics.get(k), (int, float)) and math.isfinite(metrics[k])
    }


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
    row.update(
        {
            f"f1[{name}]": _round(m.get("f1"))
            for name, m in (metrics.get("per_label") or {}).items()
        }
    )
    return row


def _round(v):
    return round(v, 5) if isinstance(v, float) else v


def epochs_markdown(
    history: list[dict], metric: str, best_epoch: int | None, outcome: TrialOutcome | None
) -> str:
    status = (
        {"finished": "complete", "stopped": "pruned"}.get(outcome.status, outcome.status)
        if outcome
        else "interrupted"
    )
    lines = [f"**{status}**" + (f", best epoch {best_epoch} by {metric}" if best_epoch else "")]
    if outcome and outcome.error:
        lines.append(f"\n`{outcome.error.splitlines()[0]}`")
    if history:
        columns = [
            c
            for c in dict.fromkeys([metric, *OBJECTIVE_METRICS, "train_loss", "epoch_time_s"])
            if c in history[0]
        ]
        lines += ["", "| epoch | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        for m in history:
            mark = " ★" if m.get("epoch") == best_epoch else ""
            cells = ["-" if m.get(c) is None else f"{m[c]:.4g}" for c in columns]
            lines.append(f"| {m.get('epoch')}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def upload(
    study_or_trial: optuna.Trial | optuna.Study, paths: Iterable[Path], artifact_dir: Path
) -> list[str]:
    store = artifact_store(artifact_dir)
    return [
        upload_artifact(
            artifact_store=store,
            file_path=str(p),
            study_or_trial=study_or_trial,
            mimetype=MIMETYPES.get(p.suffix),
        )
        for p in paths
    ]
