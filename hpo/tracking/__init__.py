"""Experiment trackers that see a study's trials as they run (MLflow: hpo.tracking.mlflow_runs).

The study loop and the objective call a `TrialEvents` at three moments: a trial starts (its
parameters are known), an epoch ends, a trial ends (Optuna knows its state). The default does
nothing; the MLflow one is imported only when a study is tracked, so an untracked study never
pays for importing mlflow. A tracker never fails a trial: its errors are logged, not raised.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.spec import StudySpec
    from trainers.config import TrainConfig

DEFAULT = "default"  # `tracking: {mlflow: default}` or a bare `--mlflow`: a SQLite file beside the study database
MLFLOW_DB = "mlflow.db"


class TrialEvents:
    """What a tracker hears of a study; every method is a no-op here."""

    def trial_started(self, trial: optuna.Trial, config: TrainConfig) -> None:
        """The trial's parameters are chosen; its training is about to start."""

    def epoch_finished(self, trial: optuna.Trial, epoch: int, metrics: dict) -> None:
        """One epoch's validation metrics (1-based epoch, as reported to Optuna)."""

    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: the trial is COMPLETE, PRUNED or FAIL, its files are written."""

    def trial_interrupted(self, trial_number: int) -> None:
        """The worker was stopped (Ctrl-C or SIGTERM) while the trial ran."""

    def study_stopped(self, study: optuna.Study, n_trials: int) -> None:
        """This process is done with the study (finished, or leaving it to other workers)."""


NO_TRACKING = TrialEvents()


def resolve_mlflow_uri(value: str | None, storage_url: str) -> str | None:
    """The tracking URI to use: None (no tracking), `value` as given, or for "default" a
    SQLite file beside the study database (sqlite:///runs/mlflow.db for the default storage)."""
    from storage import default_artifact_dir

    if not value:
        return None
    if value == DEFAULT:
        return f"sqlite:///{default_artifact_dir(storage_url).parent / MLFLOW_DB}"
    return value


def open_tracker(
    study: optuna.Study,
    spec: StudySpec,
    uri: str | None,
    artifact_dir: Path | None,
    storage_url: str,
) -> TrialEvents:
    """The study's tracker: MLflow at `uri` (its parent run created once, under the study
    lock, by whichever process comes first), or none."""
    if uri is None:
        return NO_TRACKING
    from hpo.errors import HpoError

    try:
        from hpo.tracking.mlflow_runs import MlflowTracker
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != "mlflow":
            raise
        raise HpoError(
            f"tracking with MLflow ({uri}) needs mlflow: pip install 'hpo-text[tracking]' (or pip install mlflow)"
        ) from None
    return MlflowTracker.open(study, spec, uri, artifact_dir, storage_url)
