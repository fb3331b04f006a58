"""What a study spec says, as typed models: data, model, search space, sampler, pruner, budget,
selection, objectives, tracking. Each model checks its own fields; StudySpec checks how they fit
together, so a spec that validates can run."""

from __future__ import annotations

import codecs
import itertools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import optuna.distributions as od
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hpo.deploy.settings import CompressSpec
from trainers.checkpoint import BLEND_FILES, EMBEDDINGS, NGRAMS
from trainers.config import (
    PACKAGED_MPNET,
    DataConfig,
    Hyperparams,
    ModelConfig,
    SplitConfig,
    Task,
    TrainConfig,
)
from trainers.objectives import DEPLOYED_METRICS, OBJECTIVE_METRICS

DEFAULT_TRAINER = "trainers.loop:train_and_evaluate"
MULTI_LABEL_ONLY = {"micro_f1", "tuned_macro_f1", "subset_accuracy"}
MULTI_CLASS_ONLY = {"accuracy", "weighted_f1"}
MODEL_SETTINGS = {
    "max_length"
}  # searchable besides Hyperparams: they go into the trial's model config


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
    agreement_suffix: str | None = Field(
        None,
        description="label_columns only: `<label><suffix>` is the annotators' agreement with that 0/1 label",
    )
    file: str | None = Field(
        None,
        description="one CSV holding every row, divided by `split` (instead of train/val/test)",
    )
    split: SplitConfig | None = Field(
        None, description="with `file`: the val and test shares and the seed of a stratified split"
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, encoding: str) -> str:
        if encoding != "auto":
            check_encoding(encoding)
        return encoding

    @model_validator(mode="after")
    def _one_label_layout(self) -> DataSpec:
        if bool(self.label_columns) == bool(self.label_column):
            raise ValueError(
                "give either label_columns (multi-label) or label_column with class_names (multi-class)"
            )
        if self.label_column and not self.class_names:
            raise ValueError("label_column needs class_names (their order fixes the class ids)")
        if self.agreement_suffix and not self.label_columns:
            raise ValueError("agreement_suffix is for label_columns (multi-label) only")
        names = self.label_columns or self.class_names or []
        kind = "label_columns" if self.label_columns else "class_names"
        _distinct_names(names, kind)
        columns = [
            *(self.label_columns or []),
            *([self.label_column] if self.label_column else []),
        ]
        if self.text_column in columns:
            raise ValueError(
                f"text_column {self.text_column!r} is also a label column; the text and its labels are different columns"
            )
        if self.agreement_suffix:
            clash = sorted(
                {f"{n}{self.agreement_suffix}" for n in columns} & {*columns, self.text_column}
            )
            if clash:
                raise ValueError(
                    f"agreement_suffix {self.agreement_suffix!r} makes agreement columns {clash} that are also text or label columns"
                )
        if bool(self.file) != bool(self.split):
            raise ValueError(
                "file and split go together: one CSV (file) divided into train/val/test (split: {val: 0.15, test: 0.15, seed: 0})"
            )
        # Compared with the defaults, not the fields set: a spec dumped whole (the stored,
        # resolved one) holds every default and must read back.
        fields = type(self).model_fields
        named = [n for n in ("test", "train", "val") if getattr(self, n) != fields[n].default]
        if self.file and named:
            raise ValueError(
                f"give either file with split, or train/val/test files, not both (remove {', '.join(named)})"
            )
        return self


def check_encoding(encoding: str) -> None:
    """A text encoding Python knows (`rot13` or `base64` are codecs, but not of text)."""
    try:
        text = getattr(codecs.lookup(encoding), "_is_text_encoding", True)
    except LookupError:
        text = False
    if not text:
        raise ValueError(
            f"encoding {encoding!r} is not a text encoding Python knows; use auto, utf-8, utf-8-sig, latin-1, cp1252, …"
        )


def _distinct_names(names: list[str], kind: str) -> None:
    blank = [n for n in names if not n.strip()]
    if blank:
        raise ValueError(f"{kind} has an empty name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{kind} repeats {repeated}; each label or class is named once")


class _ParamBase(_Strict):
    when: dict[str, list[Any]] | None = Field(
        None,
        description="suggest this parameter only when an earlier categorical one took one of these values",
    )

    @field_validator("when", mode="before")
    @classmethod
    def _values_as_lists(cls, when: Any) -> Any:
        if isinstance(when, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in when.items()}
        return when

    def applies(self, chosen: dict[str, Any]) -> bool:
        return not self.when or all(
            chosen.get(name) in values for name, values in self.when.items()
        )


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


Param = Annotated[CategoricalParam | FloatParam | IntParam, Field(discriminator="type")]


class SamplerSpec(_Strict):
    type: Literal["grid", "tpe", "random", "gp", "cmaes", "qmc"] = "tpe"
    seed: int = 0
    n_startup_trials: int = Field(
        5, ge=0, description="TPE, GP, CMA-ES: random trials before modelling"
    )


class PrunerSpec(_Strict):
    type: Literal[
        "none", "median", "successive_halving", "hyperband", "wilcoxon", "patient", "threshold"
    ] = "median"
    n_startup_trials: int = Field(2, ge=0)
    # Steps are epochs, numbered from 1, and Optuna prunes once step >= n_warmup_steps: 0 and 1
    # both allow pruning after epoch 1; 2 waits for epoch 2.
    n_warmup_steps: int = Field(0, ge=0)
    min_resource: int = Field(1, ge=1)
    reduction_factor: int = Field(3, ge=2)
    patience: int = Field(
        1, ge=0, description="patient: epochs without improvement before the median pruner may act"
    )
    min_delta: float = Field(0.0, ge=0)
    lower: float | None = Field(
        None, description="threshold: prune a trial whose value falls below this"
    )
    upper: float | None = Field(
        None, description="threshold: prune a trial whose value rises above this"
    )
    p_threshold: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="wilcoxon: prune when the trial is worse than the best at this p-value",
    )

    @model_validator(mode="after")
    def _threshold_bounds(self) -> PrunerSpec:
        if self.type == "threshold" and self.lower is None and self.upper is None:
            raise ValueError("pruner threshold needs lower or upper")
        return self


class BudgetSpec(_Strict):
    """Wall-clock budget of the whole study, all workers together, counted from its first turn."""

    minutes: float = Field(gt=0)


class SelectionSpec(_Strict):
    """After the search: the top-k configurations re-run with more seeds, chosen on the mean."""

    top_k: int = Field(3, ge=1)
    seeds: int = Field(
        3, ge=2, description="seeds per configuration (its search run counts as one)"
    )
    prune: bool = Field(
        True, description="stop a re-run once Optuna's WilcoxonPruner finds it clearly behind"
    )
    thresholds: Literal["val", "cross_fit"] = Field(
        "val",
        description="retrain: per-label thresholds on val, or on out-of-fold predictions over train + val",
    )
    folds: int = Field(4, ge=2, description="cross_fit: folds over train + val")
    ensemble: Literal["none", "seeds", "candidates"] = Field(
        "none",
        description="retrain: deliver the mean probability of the chosen configuration's seeds "
        "(seeds; true means this), or of every seed of every candidate the Wilcoxon pruner did "
        "not stop (candidates); models `hpo select` trained are reused, not trained again",
    )

    @field_validator("ensemble", mode="before")
    @classmethod
    def _ensemble_flag(cls, value: Any) -> Any:
        return (
            {True: "seeds", False: "none"}.get(value, value) if isinstance(value, bool) else value
        )

    @model_validator(mode="after")
    def _ensemble_thresholds(self) -> SelectionSpec:
        if self.ensemble != "none" and self.thresholds == "cross_fit":
            raise ValueError(
                f"ensemble: {self.ensemble} needs thresholds: val (cross-fitted thresholds come from single models, calibrated differently from a mean of models)"
            )
        return self


class BlendSpec(_Strict):
    """Retrain: mix the delivered model's probabilities with side models fitted on train
    (trainers.blend), at the weights that score best on val."""

    models: tuple[str, ...] = Field(
        (NGRAMS,),
        min_length=1,
        description="the side models: `ngrams` (a TF-IDF logistic regression), `embeddings` (a logistic regression over `encoder`'s sentence embedding)",
    )
    encoder: str = Field(
        PACKAGED_MPNET,
        description="the frozen sentence encoder of the `embeddings` side model: a model folder, a hub name or a packaged: model",
    )
    weights: tuple[float, ...] = Field(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8),
        min_length=1,
        description="each side model's candidate weights in the mix; every combination whose total is at most the largest is a candidate, and all 0 (no blend) always is",
    )

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [m for m in models if m not in BLEND_FILES]
        if unknown:
            raise ValueError(
                f"unknown side model(s) {unknown}; choose from {', '.join(BLEND_FILES)}"
            )
        if len(set(models)) < len(models):
            raise ValueError(f"each side model once, got {list(models)}")
        return models

    @field_validator("weights")
    @classmethod
    def _in_unit_interval(cls, weights: tuple[float, ...]) -> tuple[float, ...]:
        bad = [w for w in weights if not 0 <= w < 1]
        if bad:
            raise ValueError(f"weights must be in [0, 1), got {bad}")
        return tuple(sorted({0.0, *weights}))

    def candidates(self) -> list[dict[str, float]]:
        """The weights to try, by side model: the smallest total first, so a tie on val keeps
        the lighter blend."""
        cap = max(self.weights) + 1e-9
        combos = [
            c for c in itertools.product(self.weights, repeat=len(self.models)) if sum(c) <= cap
        ]
        combos.sort(key=lambda c: (sum(c), c))
        return [dict(zip(self.models, c, strict=True)) for c in combos]

    @property
    def uses_encoder(self) -> bool:
        return EMBEDDINGS in self.models


class ObjectiveSpec(_Strict):
    metric: str = "tuned_macro_f1"
    direction: Literal["maximize", "minimize"] | None = None

    @property
    def resolved_direction(self) -> str:
        if self.direction:
            return self.direction
        return (
            "maximize"
            if {**OBJECTIVE_METRICS, **DEPLOYED_METRICS}[self.metric] == "max"
            else "minimize"
        )


class TrackingSpec(_Strict):
    mlflow: str | None = Field(
        None,
        description="MLflow tracking URI (http://host:5000, sqlite:///file.db), or `default`: a SQLite file beside the study database",
    )


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
    objectives: list[ObjectiveSpec] | None = Field(
        None,
        min_length=2,
        description="a multi-objective study: the first is a validation metric, the others may be deployed ones (texts_per_second, ...)",
    )
    n_trials: int = Field(10, ge=1)
    tracking: TrackingSpec = TrackingSpec()
    budget: BudgetSpec | None = Field(
        None, description="stop starting trials once the next would overrun this"
    )
    selection: SelectionSpec | None = Field(
        None, description="re-run the top configurations with more seeds (hpo select)"
    )
    blend: BlendSpec | None = Field(
        None,
        description="retrain: blend the delivered model with side models fitted on train (trainers.blend)",
    )
    test_scores: bool = Field(
        False,
        description="score every finished trial on test after the study (never read by the sampler)",
    )
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="named overlays of this spec, run with --variant NAME as study <name>-<variant>",
    )
    compress: CompressSpec = Field(
        CompressSpec(),
        description="deployment variants `hpo compress` builds from the retrained model",
    )
    trainer: str = Field(
        DEFAULT_TRAINER,
        pattern=r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$",
        description="module:function that trains one trial: (TrainConfig, reporter) -> result with best_epoch, best_value, stopped_early; "
        "code that the study imports (hpo check only locates it)",
    )

    @model_validator(mode="before")
    @classmethod
    def _first_objective(cls, raw: Any) -> Any:
        """With `objectives`, `objective` is the first of them (it picks each trial's best epoch)
        and the pruner defaults to none: Optuna prunes single-objective studies only."""
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("objectives"), list)
            or not raw["objectives"]
        ):
            return raw
        if (
            "objective" in raw and raw["objective"] != raw["objectives"][0]
        ):  # a stored spec holds both, the same
            raise ValueError("give objective (one) or objectives (several), not both")
        return {
            **raw,
            "objective": raw["objectives"][0],
            "pruner": raw.get("pruner", {"type": "none"}),
        }

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        _check_objective(self)
        _check_distributions(self)
        _check_objectives(self)
        _check_hyperparams(self)
        _check_conditions(self)
        if self.blend and self.selection and self.selection.thresholds == "cross_fit":
            raise ValueError(
                "blend needs selection.thresholds: val (cross-fitted thresholds come from the model without its side models)"
            )
        if self.sampler.type == "grid":
            _check_grid(self)
        return self

    @property
    def all_objectives(self) -> list[ObjectiveSpec]:
        return list(self.objectives) if self.objectives else [self.objective]

    @property
    def multi_objective(self) -> bool:
        return len(self.all_objectives) > 1

    @property
    def directions(self) -> list[str]:
        return [o.resolved_direction for o in self.all_objectives]

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

    def train_config(
        self, data_dir: str | Path, params: dict[str, Any], seed: int | None = None
    ) -> TrainConfig:
        """The trainer's config for one trial: fixed settings, then the trial's parameters."""
        hyper = {k: v for k, v in {**self.training, **params}.items() if k not in MODEL_SETTINGS}
        if seed is not None:
            hyper["seed"] = seed
        model = self.model.model_copy(
            update={k: v for k, v in params.items() if k in MODEL_SETTINGS}
        )
        return TrainConfig(
            task=self.task,
            data=self.data_config(data_dir),
            model=model,
            hyper=Hyperparams.model_validate(hyper),
            monitor=self.objective.metric,
            monitor_mode="max" if self.objective.resolved_direction == "maximize" else "min",
            measure_deployed=self.multi_objective,
        )

    def data_config(self, data_dir: str | Path) -> DataConfig:
        base = (
            Path(self.data.dir)
            if Path(self.data.dir).is_absolute()
            else Path(data_dir) / self.data.dir
        )
        if self.data.file and self.data.split:
            return DataConfig.parts_of(
                base / self.data.file, self.data.split, **self._data_columns()
            )
        return DataConfig(
            train_path=base / self.data.train,
            val_path=base / self.data.val,
            test_path=base / self.data.test if self.data.test else None,
            **self._data_columns(),
        )

    def _data_columns(self) -> dict[str, Any]:
        return {
            "text_column": self.data.text_column,
            "label_columns": tuple(self.data.label_columns) if self.data.label_columns else None,
            "label_column": self.data.label_column,
            "class_names": tuple(self.data.class_names) if self.data.class_names else None,
            "encoding": self.data.encoding,
            "agreement_suffix": self.data.agreement_suffix,
        }


def _check_objective(spec: StudySpec) -> None:
    metric = spec.objective.metric
    where = "objectives.0.metric" if spec.objectives else "objective.metric"
    if metric not in OBJECTIVE_METRICS:
        extra = (
            " (the first objective picks each trial's best epoch: a validation metric)"
            if spec.objectives
            else ""
        )
        raise ValueError(f"{where} {metric!r} is not one of {sorted(OBJECTIVE_METRICS)}{extra}")
    wrong = MULTI_CLASS_ONLY if spec.task == "multi_label" else MULTI_LABEL_ONLY
    for o in spec.all_objectives:
        if o.metric in wrong:
            raise ValueError(f"{where} {o.metric!r} does not apply to a {spec.task} task")


def _check_objectives(spec: StudySpec) -> None:
    """Several objectives: distinct metrics, a validation metric first, and no pruner."""
    if not spec.objectives:
        return
    names = [o.metric for o in spec.objectives]
    if len(set(names)) != len(names):
        raise ValueError(f"objectives: each metric once, but got {names}")
    for o in spec.objectives[1:]:
        if o.metric not in OBJECTIVE_METRICS and o.metric not in DEPLOYED_METRICS:
            raise ValueError(
                f"objectives: {o.metric!r} is not one of {sorted(OBJECTIVE_METRICS) + sorted(DEPLOYED_METRICS)}"
            )
    if spec.pruner.type != "none":
        raise ValueError(f"pruner {spec.pruner.type!r} cannot prune a study with {len(names)} objectives (Optuna prunes single-objective studies only); "
                         "set pruner: {type: none} or leave it out")  # fmt: skip


def _check_distributions(spec: StudySpec) -> None:
    """Each parameter as the Optuna distribution it becomes, so a range Optuna would refuse at the
    first trial (a log range from 0, a step larger than the range) is refused now."""
    for name, param in spec.search_space.items():
        try:
            distribution(param)
        except ValueError as e:
            raise ValueError(f"search_space.{name}: {e}") from None


def distribution(param: Param) -> od.BaseDistribution:
    if isinstance(param, CategoricalParam):
        odd = [c for c in param.choices if not _scalar(c)]
        if odd:
            raise ValueError(f"choices must be numbers, strings, booleans or null, not {odd[0]!r}")
        if any(a == b for i, a in enumerate(param.choices) for b in param.choices[i + 1 :]):
            raise ValueError(f"choices {param.choices} repeat a value")
        return od.CategoricalDistribution(param.choices)
    if not all(math.isfinite(v) for v in (param.low, param.high, param.step or 1)):
        raise ValueError(
            f"low, high and step must be finite numbers, got low {param.low}, high {param.high}, step {param.step}"
        )
    if param.step is not None and param.step <= 0:
        raise ValueError(f"step must be above 0, got {param.step}")
    if isinstance(param, FloatParam):
        return od.FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    return od.IntDistribution(param.low, param.high, log=param.log, step=param.step)


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def _check_hyperparams(spec: StudySpec) -> None:
    known = set(Hyperparams.model_fields)
    for section, keys in (("training", spec.training), ("search_space", spec.search_space)):
        unknown = sorted(
            set(keys) - known - (MODEL_SETTINGS if section == "search_space" else set())
        )
        if unknown:
            raise ValueError(
                f"{section}: unknown setting(s) {unknown}; known: {', '.join(sorted(known))}"
            )
    Hyperparams.model_validate(spec.training)
    soft = "soft_label_weight" in spec.search_space or spec.training.get("soft_label_weight", 0)
    if soft and not spec.data.agreement_suffix:
        raise ValueError(
            "soft_label_weight needs data.agreement_suffix, the suffix of the columns with annotator agreement"
        )
    for name, param in spec.search_space.items():
        values = param.choices if isinstance(param, CategoricalParam) else [param.low, param.high]
        if not isinstance(param, CategoricalParam) and param.low > param.high:
            raise ValueError(f"search_space.{name}: low {param.low} is above high {param.high}")
        for value in values:
            try:
                if name in MODEL_SETTINGS:
                    ModelConfig.model_validate({**spec.model.model_dump(), name: value})
                    continue
                Hyperparams.model_validate({**spec.training, name: value})
            except ValidationError as e:
                raise ValueError(
                    f"search_space.{name}: value {value!r} is invalid ({e.errors()[0]['msg']})"
                ) from None


def _check_conditions(spec: StudySpec) -> None:
    """A `when` names a categorical parameter listed earlier, by values it can take."""
    earlier: dict[str, Param] = {}
    for name, param in spec.search_space.items():
        for other, values in (param.when or {}).items():
            where, source = f"search_space.{name}.when.{other}", earlier.get(other)
            if not isinstance(source, CategoricalParam):
                raise ValueError(
                    f"{where}: {other!r} must be a categorical parameter listed before {name!r}"
                )
            unknown = [v for v in values if v not in source.choices]
            if unknown:
                raise ValueError(f"{where}: {unknown} not among its choices {source.choices}")
        earlier[name] = param


def _check_grid(spec: StudySpec) -> None:
    conditional = [n for n, p in spec.search_space.items() if p.when]
    if conditional:
        raise ValueError(
            f"sampler grid cannot skip parameters, but {conditional} have `when`; use tpe or random"
        )
    ranged = [n for n, p in spec.search_space.items() if not isinstance(p, CategoricalParam)]
    if ranged:
        raise ValueError(
            f"sampler grid needs categorical parameters only, but {ranged} are ranges"
        )
    if spec.n_trials > spec.grid_size:
        raise ValueError(f"n_trials {spec.n_trials} exceeds the grid's {spec.grid_size} points")
