"""Study specs: YAML in `studies/`, validated into typed models.

Every mistake becomes one line naming the file and the field; the spec is the only place a
user writes, so it is checked before any trial starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hpo.errors import SpecError
from trainers.config import DataConfig, Hyperparams, ModelConfig, Task, TrainConfig
from trainers.objectives import OBJECTIVE_METRICS

STUDIES_DIR = Path("studies")
DEFAULT_TRAINER = "trainers.loop:train_and_evaluate"
MULTI_LABEL_ONLY = {"micro_f1", "tuned_macro_f1", "subset_accuracy"}
MULTI_CLASS_ONLY = {"accuracy", "weighted_f1"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    dir: str = Field(description="folder of the CSVs; a relative one is taken under DATA_DIR")
    train: str = "train.csv"
    val: str = "val.csv"
    test: str | None = "test.csv"
    text_column: str
    label_columns: list[str] | None = None
    label_column: str | None = None
    class_names: list[str] | None = None
    encoding: str = "auto"
    agreement_suffix: str | None = Field(None, description="label_columns only: `<label><suffix>` is the annotators' agreement with that 0/1 label")

    @model_validator(mode="after")
    def _one_label_layout(self) -> DataSpec:
        if bool(self.label_columns) == bool(self.label_column):
            raise ValueError("give either label_columns (multi-label) or label_column with class_names (multi-class)")
        if self.label_column and not self.class_names:
            raise ValueError("label_column needs class_names (their order fixes the class ids)")
        if self.agreement_suffix and not self.label_columns:
            raise ValueError("agreement_suffix is for label_columns (multi-label) only")
        return self


class _ParamBase(_Strict):
    when: dict[str, list[Any]] | None = Field(
        None, description="suggest this parameter only when an earlier categorical one took one of these values"
    )

    @field_validator("when", mode="before")
    @classmethod
    def _values_as_lists(cls, when: Any) -> Any:
        if isinstance(when, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in when.items()}
        return when

    def applies(self, chosen: dict[str, Any]) -> bool:
        return not self.when or all(chosen.get(name) in values for name, values in self.when.items())


class CategoricalParam(_ParamBase):
    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class FloatParam(_ParamBase):
    type: Literal["float"]
    low: float
    high: float
    log: bool = False
    step: float | None = None


class IntParam(_ParamBase):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = 1


Param = Annotated[Union[CategoricalParam, FloatParam, IntParam], Field(discriminator="type")]


class SamplerSpec(_Strict):
    type: Literal["grid", "tpe", "random"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(5, ge=0, description="TPE: random trials before modelling")


class PrunerSpec(_Strict):
    type: Literal["none", "median", "successive_halving", "hyperband"] = "median"
    n_startup_trials: int = Field(2, ge=0)
    # Steps are epochs, numbered from 1, and Optuna prunes once step >= n_warmup_steps: 0 and 1
    # both allow pruning after epoch 1; 2 waits for epoch 2.
    n_warmup_steps: int = Field(0, ge=0)
    min_resource: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)


class ObjectiveSpec(_Strict):
    metric: str = "tuned_macro_f1"
    direction: Literal["maximize", "minimize"] | None = None

    @property
    def resolved_direction(self) -> str:
        if self.direction:
            return self.direction
        return "maximize" if OBJECTIVE_METRICS[self.metric] == "max" else "minimize"


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    task: Task
    data: DataSpec
    model: ModelConfig = ModelConfig()
    training: dict[str, Any] = Field(default_factory=dict, description="fixed Hyperparams values")
    search_space: dict[str, Param] = Field(default_factory=dict)
    sampler: SamplerSpec = SamplerSpec()
    pruner: PrunerSpec = PrunerSpec()
    objective: ObjectiveSpec = ObjectiveSpec()
    n_trials: int = Field(10, ge=1)
    test_scores: bool = Field(False, description="score every finished trial on test after the study (never read by the sampler)")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named overlays of this spec, run with --variant NAME as study <name>-<variant>"
    )
    trainer: str = Field(
        DEFAULT_TRAINER,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function that trains one trial: (TrainConfig, reporter) -> result with best_epoch, best_value, stopped_early",
    )

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        _check_objective(self)
        _check_hyperparams(self)
        _check_conditions(self)
        if self.sampler.type == "grid":
            _check_grid(self)
        return self

    @property
    def max_epochs(self) -> int:
        """The most epochs a trial can train: a searched `epochs`' upper end, else the fixed or
        default value (Hyperband's maximum resource)."""
        searched = self.search_space.get("epochs")
        if isinstance(searched, CategoricalParam):
            return int(max(searched.choices))
        if searched is not None:
            return int(searched.high)
        return Hyperparams.model_validate(self.training).epochs

    @property
    def grid_size(self) -> int:
        size = 1
        for p in self.search_space.values():
            size *= len(p.choices)  # type: ignore[union-attr]  # grid specs hold categoricals only
        return size

    def train_config(self, data_dir: str | Path, params: dict[str, Any], seed: int | None = None) -> TrainConfig:
        """The trainer's config for one trial: fixed settings, then the trial's parameters."""
        hyper = {**self.training, **params}
        if seed is not None:
            hyper["seed"] = seed
        return TrainConfig(
            task=self.task,
            data=self.data_config(data_dir),
            model=self.model,
            hyper=Hyperparams.model_validate(hyper),
            monitor=self.objective.metric,
            monitor_mode="max" if self.objective.resolved_direction == "maximize" else "min",
        )

    def data_config(self, data_dir: str | Path) -> DataConfig:
        base = Path(self.data.dir) if Path(self.data.dir).is_absolute() else Path(data_dir) / self.data.dir
        return DataConfig(
            train_path=base / self.data.train,
            val_path=base / self.data.val,
            test_path=base / self.data.test if self.data.test else None,
            text_column=self.data.text_column,
            label_columns=tuple(self.data.label_columns) if self.data.label_columns else None,
            label_column=self.data.label_column,
            class_names=tuple(self.data.class_names) if self.data.class_names else None,
            encoding=self.data.encoding,
            agreement_suffix=self.data.agreement_suffix,
        )


def _check_objective(spec: StudySpec) -> None:
    metric = spec.objective.metric
    if metric not in OBJECTIVE_METRICS:
        raise ValueError(f"objective.metric {metric!r} is not one of {sorted(OBJECTIVE_METRICS)}")
    wrong = MULTI_CLASS_ONLY if spec.task == "multi_label" else MULTI_LABEL_ONLY
    if metric in wrong:
        raise ValueError(f"objective.metric {metric!r} does not apply to a {spec.task} task")


def _check_hyperparams(spec: StudySpec) -> None:
    known = set(Hyperparams.model_fields)
    for section, keys in (("training", spec.training), ("search_space", spec.search_space)):
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ValueError(f"{section}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}")
    Hyperparams.model_validate(spec.training)
    soft = "soft_label_weight" in spec.search_space or spec.training.get("soft_label_weight", 0)
    if soft and not spec.data.agreement_suffix:
        raise ValueError("soft_label_weight needs data.agreement_suffix, the suffix of the columns with annotator agreement")
    for name, param in spec.search_space.items():
        values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
        if not isinstance(param, CategoricalParam) and param.low > param.high:
            raise ValueError(f"search_space.{name}: low {param.low} is above high {param.high}")
        for value in values:
            try:
                Hyperparams.model_validate({**spec.training, name: value})
            except ValidationError as e:
                raise ValueError(f"search_space.{name}: value {value!r} is invalid ({e.errors()[0]['msg']})") from None


def _check_conditions(spec: StudySpec) -> None:
    """A `when` names a categorical parameter listed earlier, by values it can take."""
    earlier: dict[str, Param] = {}
    for name, param in spec.search_space.items():
        for other, values in (param.when or {}).items():
            where, source = f"search_space.{name}.when.{other}", earlier.get(other)
            if not isinstance(source, CategoricalParam):
                raise ValueError(f"{where}: {other!r} must be a categorical parameter listed before {name!r}")
            unknown = [v for v in values if v not in source.choices]
            if unknown:
                raise ValueError(f"{where}: {unknown} not among its choices {source.choices}")
        earlier[name] = param


def _check_grid(spec: StudySpec) -> None:
    conditional = [n for n, p in spec.search_space.items() if p.when]
    if conditional:
        raise ValueError(f"sampler grid cannot skip parameters, but {conditional} have `when`; use tpe or random")
    ranged = [n for n, p in spec.search_space.items() if not isinstance(p, CategoricalParam)]
    if ranged:
        raise ValueError(f"sampler grid needs categorical parameters only, but {ranged} are ranges")
    if spec.n_trials > spec.grid_size:
        raise ValueError(f"n_trials {spec.n_trials} exceeds the grid's {spec.grid_size} points")


def resolve_spec_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        return path
    return STUDIES_DIR / f"{name_or_path}.yaml"


def load_spec(name_or_path: str, variant: str | None = None) -> StudySpec:
    path = resolve_spec_path(name_or_path)
    if not path.is_file() and variant is None and (found := _as_variant(name_or_path)):
        return load_spec(*found)  # "roberta-multilabel-imbalance" names a variant's study
    if not path.is_file():
        available = sorted(p.stem for p in STUDIES_DIR.glob("*.yaml"))
        raise SpecError(f"{path}: no such study spec; available: {', '.join(available) or 'none'}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a study spec is a YAML mapping, but got {type(raw).__name__}")
    spec = _validate(raw, path)
    for name in spec.variants:  # a broken variant is reported now, not on the day it is run
        _validate(_with_variant(raw, name), path, f"variants.{name}: ")
    if variant is None:
        return spec
    if variant not in spec.variants:
        raise SpecError(f"{path}: no variant {variant!r}; variants: {', '.join(spec.variants) or 'none'}")
    return _validate(_with_variant(raw, variant), path)


def _as_variant(study_name: str) -> tuple[str, str] | None:
    parts = study_name.split("-")
    for i in range(len(parts) - 1, 0, -1):
        base, variant = "-".join(parts[:i]), "-".join(parts[i:])
        if resolve_spec_path(base).is_file():
            return base, variant
    return None


def _validate(raw: dict, path: Path, prefix: str = "") -> StudySpec:
    try:
        return StudySpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(f"{path}: {prefix}{_first_error(e)}") from None


def _with_variant(raw: dict, variant: str) -> dict:
    """The spec with the variant's overlay merged in (mappings merge, anything else replaces)."""
    overlay = raw.get("variants", {}).get(variant)
    if not isinstance(overlay, dict):
        return raw
    merged = _deep_merge({k: v for k, v in raw.items() if k != "variants"}, overlay)
    # A parameter's definition is replaced whole: merging a float range into a choice list is nonsense.
    merged["search_space"] = {**raw.get("search_space", {}), **overlay.get("search_space", {})}
    merged["name"] = f"{raw.get('name')}-{variant}"
    return merged


def _deep_merge(base: dict, overlay: dict) -> dict:
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown field (remove it or check its spelling)"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    return f"field {loc}: {msg}" if loc else msg


def default_data_dir(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("DATA_DIR") or "data")
