"""Every name the service stores, in one place: Optuna user attributes, artifact names and the
layout of a retrained model's `metrics.json`.

The study loop and the trials write through these names; reports, the dashboard notes and
retraining read through them. A key spelt out anywhere else is a bug waiting for a rename.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hpo.errors import HpoError
from trainers.checkpoint import NGRAMS
from trainers.config import Task

if TYPE_CHECKING:  # pandas behind it: a study worker never reads a profile
    from trainers.profile import DataProfile

# ---- study user attributes ------------------------------------------------------------------

SPEC_YAML = "spec_yaml"
"""The spec's text as the user wrote it (a variant's: the spec it resolves to), for the study note only."""

SPEC_RESOLVED = "spec_resolved"
"""The validated spec the study runs, variant applied, as JSON: what `hpo report`, `retrain` and
`score-trials` use, and (minus what a resumed study may change) the fingerprint that refuses a
changed spec. Studies created before it held n_trials and description lack those two."""

DATA_FINGERPRINT = "data_fingerprint"
"""Per split (train, val, test): `{"path", "rows", "sha256"}` of the data the trials use; a
resume, a retrain or scoring on train or val of other content is refused."""

PREFLIGHT_WARNINGS = "preflight_warnings"
"""What looked wrong in the data but could run (also in the study note)."""

OBJECTIVE = "objective"
"""`"<metric> (<direction>)"`, for people: reports and the console name the objective with it."""

TASK = "task"
MODEL = "model"

TRAIN_PREVALENCE = "train_prevalence"
"""Each label's (or class's) share of the training split."""

ROWS_PREFIX = "n_"
"""`n_train`, `n_val`, `n_test`: rows per split."""

DATA_PROFILE = "data_profile"
"""The data set's profile (trainers.profile.DataProfile as JSON), computed before the first
trial: reports and the study note show it without reading the data."""

MLFLOW_RUNS = "mlflow_runs"
"""MLflow tracking URI → the id of the study's parent run there, created once (under the study
lock) whichever worker comes first."""


def read_profile(study_attrs: dict[str, Any]) -> DataProfile | None:
    from trainers.profile import DataProfile

    raw = study_attrs.get(DATA_PROFILE)
    return DataProfile.model_validate(raw) if raw else None


BUDGET_STARTED_AT = "budget_started_at"
"""Unix time of the study's first turn under a time budget: every worker counts from it."""

SELECTED_TRIAL = "selected_trial"
"""Trial number `hpo select` chose on its mean over seeds; `hpo retrain` retrains it."""

_SELECTION = re.compile(r"selection_(\d+)")


def selection_key(trial_number: int) -> str:
    """Study attribute of one candidate's re-runs: its score per seed, mean, standard error,
    and whether the Wilcoxon pruner stopped it (finished trials are read-only)."""
    return f"selection_{trial_number:04d}"


def selections_of(study_attrs: dict[str, Any]) -> dict[int, SelectionRecord]:
    return {
        int(m.group(1)): SelectionRecord.model_validate(v)
        for k, v in study_attrs.items()
        if (m := _SELECTION.fullmatch(k))
    }


_TEST_SCORES = re.compile(r"test_scores_(\d+)")


def test_scores_key(trial_number: int) -> str:
    """Study attribute holding one trial's test scores, written after the study by `hpo
    score-trials` (finished trials are read-only) and never read by the sampler."""
    return f"test_scores_{trial_number:04d}"


def test_scores_of(study_attrs: dict[str, Any]) -> dict[int, dict]:
    """Trial number → test scores, from a study's user attributes."""
    return {int(m.group(1)): v for k, v in study_attrs.items() if (m := _TEST_SCORES.fullmatch(k))}


# ---- trial user attributes ------------------------------------------------------------------

_EPOCH = re.compile(r"epoch_(\d+)")

BEST_EPOCH = "best_epoch"
"""The epoch the trial's value comes from (its kept weights)."""

FAIL_REASON = "fail_reason"
"""Why a trial failed: first line a reason, then the end of the traceback."""

WORKER = "worker"
"""`host:pid` of the worker process that ran the trial."""

GPU = "gpu"
"""The CUDA_VISIBLE_DEVICES the trial ran under, when set."""

PEAK_MEMORY_MB = "peak_device_memory_mb"
"""Device memory the trial's process reserved after its first steps (CUDA only)."""

RUN_ALONE = "run_alone"
"""Set on a trial queued again after it ran out of memory beside others: it gets a GPU alone."""


MLFLOW_RUN_ID = "mlflow_run_id"
"""The id of the trial's child run in MLflow, when the study is tracked."""
DEPLOYED = "deployed"
"""Multi-objective studies: the trained model measured as deployed (validation metrics,
texts_per_second, model_size_mb, parameters; trainers.measure), where the objectives come from."""
OOM_CONSTRAINT = "out_of_memory"
"""Constraint (Optuna's `trial.set_constraint`) of every finished trial: 1.0 when it ran out of
memory on its own (infeasible), 0.0 otherwise."""


def epoch_key(epoch: int) -> str:
    """Trial attribute holding every metric of one epoch (1-based) as a dict."""
    return f"epoch_{epoch:03d}"


def epoch_history(user_attrs: dict[str, Any]) -> list[dict]:
    """A trial's per-epoch metrics dicts in epoch order (numeric: epoch 1000 follows 999)."""
    keyed = [(int(m.group(1)), v) for k, v in user_attrs.items() if (m := _EPOCH.fullmatch(k))]
    return [v for _, v in sorted(keyed, key=lambda kv: kv[0])]


def headline_key(metric: str) -> str:
    """Flat, sortable trial attribute of one best-epoch metric: `val_macro_f1`, `train_loss`."""
    return metric if metric.endswith("_loss") else f"val_{metric}"


# ---- artifacts ------------------------------------------------------------------------------

ARTIFACT_META_PREFIX = "artifacts:"
"""Prefix of the study system attributes in which optuna.artifacts keeps each artifact's metadata."""


SPLIT_FILE = "split.csv"
"""runs/<study>/split.csv: the part (train, val, test) each row of a split file went to."""


def attached_name(trial_number: int, filename: str) -> str:
    """Study artifact name of a file attached to a trial after the study."""
    return f"trial-{trial_number}-{filename}"


# ---- JSON -----------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """numpy → Python, NaN and infinities → None: user attributes (the dashboard) and
    metrics.json are strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ---- runs/<study>/best/metrics.json -----------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SelectionRecord(_Record):
    """One candidate of `hpo select`: its score per seed (the search run's first), their mean
    and standard error (None for one seed), and whether the Wilcoxon pruner stopped it."""

    scores: list[float]
    mean: float
    standard_error: float | None
    search_value: float
    pruned: bool

    def attr(self) -> dict[str, Any]:
        return json_safe(self.model_dump())


class EnsembleMember(_Record):
    """One model of a delivered ensemble: the trial whose configuration it trains, at a seed."""

    trial: int
    seed: int


class BlendRecord(_Record):
    """How the blend's weights were chosen: the validation objective at each candidate (keyed
    by `weights_key`; all 0: the model alone), each side model's alone, and the weights kept."""

    metric: str
    weights: dict[str, float]
    model_val_value: float
    side_val_values: dict[str, float]
    by_weights: dict[str, float]

    @model_validator(mode="before")
    @classmethod
    def _from_ngram_only(cls, raw: Any) -> Any:
        """metrics.json written when the n-gram model was the only side model."""
        if not isinstance(raw, dict) or "weight" not in raw:
            return raw
        old = dict(raw)
        return {
            "metric": old.pop("metric", None),
            "model_val_value": old.pop("model_val_value", None),
            "weights": {NGRAMS: old.pop("weight")},
            "side_val_values": {NGRAMS: old.pop("ngram_val_value", None)},
            "by_weights": {weights_key({NGRAMS: float(w)}): v for w, v in old.pop("by_weight", {}).items()},
            **old,
        }  # fmt: skip

    @property
    def kept(self) -> dict[str, float]:
        """The side models in the delivered mix, with their weights."""
        return {kind: w for kind, w in self.weights.items() if w > 0}


def weights_key(weights: dict[str, float]) -> str:
    """`ngrams=0.3 embeddings=0.2`: a candidate's name in BlendRecord.by_weights."""
    return " ".join(f"{kind}={w:g}" for kind, w in weights.items())


class JsonRecord(_Record):
    """A typed record kept as one JSON file, FILENAME, in a folder, written by WRITER (the
    command to run again when the file is not what it wrote)."""

    FILENAME: ClassVar[str]
    WRITER: ClassVar[str]

    def write(self, folder: Path) -> Path:
        path = Path(folder) / self.FILENAME
        path.write_text(json.dumps(json_safe(self.model_dump(mode="json")), indent=2))
        return path

    @classmethod
    def read(cls, folder: Path):
        """The record in `folder`, None if there is none; a file that is not what WRITER
        wrote is one line naming it."""
        path = Path(folder) / cls.FILENAME
        if not path.is_file():
            return None
        try:
            return cls.model_validate_json(path.read_bytes())
        except OSError as e:
            raise HpoError(f"{path}: cannot be read ({e.strerror or e})") from None
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise HpoError(
                f"{path}: not what `{cls.WRITER}` writes ({where + ': ' if where else ''}{err['msg']}); "
                f"run `{cls.WRITER}` again or delete the file"
            ) from None


class ObjectiveFigures(_Record):
    """The objective on validation: the trial's value, the retrained model's, the baseline's."""

    metric: str
    trial_value: float | None
    retrained_val_value: float | None
    baseline_val_value: float | None


class TestFigures(_Record):
    """Test scores: at 0.5 (multi-class: argmax), at the tuned thresholds (multi-label), and
    95 % bootstrap intervals keyed "default.<metric>", "tuned.<metric>" or "<metric>"."""

    default: dict[str, Any]
    tuned: dict[str, Any] | None = None
    intervals: dict[str, list[float | None]] = {}


class BestMetrics(JsonRecord):
    """What `hpo retrain` measured of the model it saved; `hpo report` and the CLI read it."""

    study: str
    trial: int
    params: dict[str, Any]
    epochs: int
    task: Task
    labels: list[str]
    thresholds: dict[str, float] | None
    objective: ObjectiveFigures
    val: dict[str, Any]
    baseline_val: dict[str, Any]
    test: TestFigures
    n_test: int
    texts_per_s: float
    seconds_per_1000_texts: float
    model_size_mb: float
    collapse: list[str] = []
    members: list[EnsembleMember] = Field(
        [], description="the delivered ensemble's members, in order (empty: one model)"
    )
    blend: BlendRecord | None = Field(
        None, description="the blend's choice on validation (None: the spec asked for none)"
    )

    FILENAME: ClassVar[str] = "metrics.json"
    WRITER: ClassVar[str] = "hpo retrain"
