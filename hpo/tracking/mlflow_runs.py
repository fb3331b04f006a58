"""A study in MLflow: one parent run for the study, one child run per trial, through MLflow's
own client (mlflow.MlflowClient), so any MLflow UI or API reads them.

The parent run is created once per tracking URI, under the study lock, and its id kept in the
study (hpo.stored.MLFLOW_RUNS): every worker, on any machine, logs its trials under the same
parent. A child run gets the trial's parameters, every epoch's scalar metrics (and each label's
F1 and average precision) with the epoch as step, the trial's state and failure reason as tags,
and the trial's files (runs/<study>/trials/<n>/) as artifacts. The retrained model's test figures
go on the parent (`log_retrained`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import FrozenTrial, TrialState

from hpo import stored
from hpo.errors import HpoError
from hpo.spec import StudySpec
from hpo.study.lock import study_lock
from hpo.tracking import TrialEvents
from hpo.trial.artifacts import trial_dir
from storage import redact, run_dir
from trainers.config import TrainConfig

log = logging.getLogger(__name__)
MAX_PARAM = 6000  # MLflow's limit on a parameter's value
MAX_TAG = 8000
_KEY = re.compile(r"[^\w.\- /:]")
FINAL_STATUS = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "FINISHED",
    TrialState.FAIL: "FAILED",
}


def _never_raises(method: Callable) -> Callable:
    """A tracker that cannot reach its server must not fail a trial that trained."""

    @functools.wraps(method)
    def safe(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception:
            log.warning("MLflow: %s failed; the study goes on", method.__name__, exc_info=True)
            return None

    return safe


class MlflowTracker(TrialEvents):
    def __init__(self, client: MlflowClient, uri: str, experiment_id: str, parent_run_id: str, spec: StudySpec,
                 artifact_dir: Path | None) -> None:  # fmt: skip
        self.client, self.uri, self.experiment_id, self.parent = (
            client,
            uri,
            experiment_id,
            parent_run_id,
        )
        self.spec, self.artifact_dir = spec, artifact_dir
        self.runs: dict[
            int, str
        ] = {}  # trial number → child run id, for the trials this process runs

    @classmethod
    def open(
        cls,
        study: optuna.Study,
        spec: StudySpec,
        uri: str,
        artifact_dir: Path | None,
        storage_url: str,
    ) -> MlflowTracker:
        _quiet_mlflow_logs()
        lock = study_lock(study)
        lock.acquire()  # one parent run however many workers start at once (and one schema migration)
        try:
            client = MlflowClient(tracking_uri=uri)
            experiment_id = _experiment(client, spec.name, uri, storage_url)
            parent = _parent_run(client, study, spec, uri, experiment_id, storage_url)
        except (
            MlflowException,
            OSError,
        ) as e:  # asked to track, and cannot: say so before any trial runs
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise HpoError(
                f"MLflow at {_shown(uri)}: cannot open the study's run ({type(e).__name__}: {first[:300]})"
            ) from e
        finally:
            lock.release()
        return cls(client, uri, experiment_id, parent, spec, artifact_dir)

    @_never_raises
    def trial_started(self, trial: optuna.Trial, config: TrainConfig) -> None:
        tags = {MLFLOW_PARENT_RUN_ID: self.parent, "optuna.study": self.spec.name, "optuna.trial": str(trial.number),
                "hpo.role": "trial", "hpo.worker": f"{socket.gethostname()}:{os.getpid()}"}  # fmt: skip
        run = self.client.create_run(
            self.experiment_id, tags=tags, run_name=f"trial-{trial.number}"
        )
        self.runs[trial.number] = run.info.run_id
        trial.set_user_attr(stored.MLFLOW_RUN_ID, run.info.run_id)
        params = {
            **config.hyper.model_dump(exclude_defaults=True),
            "seed": config.hyper.seed,
            **trial.params,
        }
        self.client.log_batch(
            run.info.run_id, params=[Param(k, _text(v, MAX_PARAM)) for k, v in params.items()]
        )

    @_never_raises
    def epoch_finished(self, trial: optuna.Trial, epoch: int, metrics: dict) -> None:
        run_id = self.runs.get(trial.number)
        if run_id is not None:
            self.client.log_batch(run_id, metrics=epoch_metrics(metrics, epoch))

    @_never_raises
    def trial_finished(self, study: optuna.Study, trial: FrozenTrial) -> None:
        run_id = self.runs.pop(trial.number, None) or trial.user_attrs.get(stored.MLFLOW_RUN_ID)
        if run_id is None:
            return
        tags = {"optuna.state": trial.state.name}
        if trial.user_attrs.get(stored.BEST_EPOCH) is not None:
            tags["best_epoch"] = str(trial.user_attrs[stored.BEST_EPOCH])
        if trial.user_attrs.get(stored.FAIL_REASON):
            tags["fail_reason"] = _text(trial.user_attrs[stored.FAIL_REASON], MAX_TAG)
        now = _now()
        metrics = (
            [Metric("objective", float(trial.value), now, trial.number)]
            if trial.value is not None
            else []
        )
        self.client.log_batch(
            run_id, metrics=metrics, tags=[RunTag(k, v) for k, v in tags.items()]
        )
        folder = (
            trial_dir(self.artifact_dir, study.study_name, trial.number)
            if self.artifact_dir
            else None
        )
        if folder is not None and any(folder.iterdir()):
            self.client.log_artifacts(run_id, str(folder))
        self.client.set_terminated(run_id, FINAL_STATUS.get(trial.state, "FAILED"))
        self._log_progress(study, trial.number)

    @_never_raises
    def trial_interrupted(self, trial_number: int) -> None:
        run_id = self.runs.pop(trial_number, None)
        if run_id is not None:
            self.client.set_tag(
                run_id, "fail_reason", "interrupted: the worker was stopped (Ctrl-C or SIGTERM)"
            )
            self.client.set_terminated(run_id, "KILLED")

    @_never_raises
    def study_stopped(self, study: optuna.Study, n_trials: int) -> None:
        finished = len(
            study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        )
        if finished >= n_trials:
            self.client.set_terminated(self.parent, "FINISHED")

    def _log_progress(self, study: optuna.Study, step: int) -> None:
        """On the parent: finished trials and the best objective so far, by trial number."""
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        now = _now()
        metrics = [Metric("trials_finished", float(len(done)), now, step)]
        if any(t.state == TrialState.COMPLETE for t in done):
            metrics.append(
                Metric(f"best_{self.spec.objective.metric}", float(study.best_value), now, step)
            )
        self.client.log_batch(self.parent, metrics=metrics)


def epoch_metrics(metrics: dict, epoch: int) -> list[Metric]:
    """Every finite scalar of one epoch, and each label's F1 and AP, stepped by the epoch."""
    now = _now()
    flat = {
        k: v for k, v in metrics.items() if k != "epoch" and not isinstance(v, (dict, list, bool))
    }
    for label, values in (metrics.get("per_label") or {}).items():
        flat.update(
            {f"{label}.{k}": values.get(k) for k in ("f1", "ap") if isinstance(values, dict)}
        )
    return [
        Metric(metric_key(k), float(v), now, epoch)
        for k, v in flat.items()
        if isinstance(v, (int, float)) and math.isfinite(v)
    ]


def metric_key(name: str) -> str:
    """MLflow keys allow letters, digits, `_-. /:`; anything else in a label's name becomes `_`."""
    return _KEY.sub("_", str(name))


def log_retrained(study: optuna.Study, metrics: stored.BestMetrics, out_dir: Path) -> list[str]:
    """The retrained model's test figures and report files, on every parent run the study has;
    returns the run ids written to."""
    runs = study.user_attrs.get(stored.MLFLOW_RUNS) or {}
    if runs:
        _quiet_mlflow_logs()
    for uri, run_id in runs.items():
        client = MlflowClient(tracking_uri=uri)
        now = _now()
        figures = {f"test.{k}": v for k, v in metrics.test.default.items()}
        figures.update({f"test.tuned.{k}": v for k, v in (metrics.test.tuned or {}).items()})
        scalars = [Metric(metric_key(k), float(v), now, 0) for k, v in figures.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]  # fmt: skip
        scalars.append(
            Metric(
                "retrained.val_objective",
                float(metrics.objective.retrained_val_value or math.nan),
                now,
                0,
            )
        )
        tags = [
            RunTag("retrained_trial", str(metrics.trial)),
            RunTag("retrained_epochs", str(metrics.epochs)),
        ]
        client.log_batch(run_id, metrics=[m for m in scalars if math.isfinite(m.value)], tags=tags)
        for path in sorted(Path(out_dir).iterdir()):
            if path.is_file() and path.suffix in (".json", ".md", ".html", ".csv"):
                client.log_artifact(run_id, str(path), artifact_path="best")
    return list(runs.values())


# --- the experiment and the parent run --------------------------------------------------------


def _experiment(client: MlflowClient, name: str, uri: str, storage_url: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifact_location(uri, storage_url))


def _artifact_location(uri: str, storage_url: str) -> str | None:
    """A server keeps its own artifacts; with a database URI, files go beside that database
    (mlflow-artifacts/), not into ./mlruns of whatever directory the study ran in."""
    if re.match(r"^(https?|databricks)", uri):
        return None
    from storage import default_artifact_dir

    match = re.match(r"^sqlite:///(.+)$", uri)
    base = Path(match.group(1)).parent if match else default_artifact_dir(storage_url).parent
    return (base / "mlflow-artifacts").resolve().as_uri()


def _parent_run(
    client: MlflowClient,
    study: optuna.Study,
    spec: StudySpec,
    uri: str,
    experiment_id: str,
    storage_url: str,
) -> str:
    """The study's parent run at `uri`: the one the study recorded (set running again), else a
    new one, recorded in the study. Call under the study lock."""
    runs = dict(
        study.user_attrs.get(stored.MLFLOW_RUNS) or {}
    )  # read from storage: another worker's record counts
    if (run_id := runs.get(uri)) and _exists(client, run_id):
        client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        client.set_tag(run_id, "n_trials", str(spec.n_trials))
        return run_id
    tags = {"optuna.study": spec.name, "optuna.storage": redact(storage_url), "hpo.role": "study", "n_trials": str(spec.n_trials),
            "objective": f"{spec.objective.metric} ({spec.objective.resolved_direction})"}  # fmt: skip
    run = client.create_run(experiment_id, tags=tags, run_name=spec.name)
    client.log_batch(
        run.info.run_id,
        params=[Param(k, _text(v, MAX_PARAM)) for k, v in study_params(study, spec).items()],
    )
    _log_study_files(client, run.info.run_id, study, spec, storage_url)
    study.set_user_attr(stored.MLFLOW_RUNS, {**runs, uri: run.info.run_id})
    return run.info.run_id


def study_params(study: optuna.Study, spec: StudySpec) -> dict[str, Any]:
    """The study's fixed facts: task, model, objective, sampler, pruner, fixed settings, the
    search space and the data's rows per split (a parameter never changes once logged)."""
    params: dict[str, Any] = {
        "task": spec.task,
        "model": spec.model.name_or_path,
        "max_length": spec.model.max_length,
        "objective": spec.objective.metric,
        "direction": spec.objective.resolved_direction,
        "sampler": spec.sampler.type,
        "pruner": spec.pruner.type,
    }
    params.update({f"fixed.{k}": v for k, v in spec.training.items()})
    params.update(
        {
            f"search.{k}": json.dumps(p.model_dump(exclude_none=True, exclude={"type"}))
            for k, p in spec.search_space.items()
        }
    )
    attrs = study.user_attrs
    params.update({f"data.{k}": v for k, v in attrs.items() if k.startswith(stored.ROWS_PREFIX)})
    return params


def _log_study_files(
    client: MlflowClient, run_id: str, study: optuna.Study, spec: StudySpec, storage_url: str
) -> None:
    """The spec, the data profile and the split's audit file, under `study/` on the parent."""
    from storage import default_artifact_dir

    attrs = study.user_attrs
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "spec.yaml").write_text(
            attrs.get(stored.SPEC_YAML) or spec.model_dump_json(indent=2)
        )
        if attrs.get(stored.DATA_PROFILE):
            (folder / "data_profile.json").write_text(
                json.dumps(attrs[stored.DATA_PROFILE], indent=1)
            )
        split = (
            run_dir(spec.name, root=default_artifact_dir(storage_url).parent) / stored.SPLIT_FILE
        )
        if split.is_file():
            (folder / stored.SPLIT_FILE).write_bytes(split.read_bytes())
        client.log_artifacts(run_id, str(folder), artifact_path="study")


def _exists(client: MlflowClient, run_id: str) -> bool:
    try:
        return client.get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def _quiet_mlflow_logs() -> None:
    """MLflow's and alembic's INFO lines (schema migrations, "creating tables") are not the study's."""
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _shown(uri: str) -> str:
    return redact(uri) if "@" in uri else uri


def _text(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _now() -> int:
    return int(time.time() * 1000)
