"""Typed configuration of one fine-tuning run.

A `TrainConfig` is everything the trainer needs and nothing about Optuna: the runner builds
one per trial, `python -m trainers config.json` reads one from disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Task = Literal["multi_label", "multi_class"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
LossName = Literal["bce", "focal", "asymmetric", "cross_entropy"]
Pooling = Literal["cls", "mean"]

PACKAGED_MINILM = "packaged:all-MiniLM-L6-v2"
SplitName = Literal["train", "val", "test"]
PACKAGED_MPNET = "packaged:all-mpnet-base-v2"  # the optional extra [mpnet]; see trainers.packaged


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Validation and test carved out of one labelled file: seeded and stratified, a pure
    function of the file's rows and the seed (trainers.split), so every run and every worker
    sees the same rows in the same part."""

    val: float = Field(0.15, gt=0, lt=1)
    test: float = Field(0.15, ge=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def _leaves_training_rows(self) -> SplitConfig:
        if self.val + self.test >= 0.9:
            raise ValueError(
                f"val {self.val} + test {self.test} leave under 10 % of the rows for training"
            )
        return self


class SplitPart(_Strict):
    """One part of a file that `DataConfig.split` divides: it stands where that part's own file
    would, so every reader of a split takes either."""

    file: Path
    part: SplitName

    def __str__(self) -> str:
        return f"{self.file} [{self.part} part]"


class DataConfig(_Strict):
    """Where the labelled text lives; either `label_columns` (multi-label, 0/1 each) or
    `label_column` with `class_names` (multi-class)."""

    train_path: Path | SplitPart
    val_path: Path | SplitPart
    test_path: Path | SplitPart | None = None
    text_column: str
    label_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    class_names: tuple[str, ...] | None = None
    encoding: str = "auto"
    # Column `<label><agreement_suffix>` holds the share of annotators who agreed with the row's
    # 0/1 label (UCC: ":confidence"); training can use it as a soft target.
    agreement_suffix: str | None = None
    cache_dir: Path = Path("runs/cache")
    # One file split into train/val/test: the paths above are then parts of that file.
    split: SplitConfig | None = None

    @model_validator(mode="after")
    def _parts_need_a_split(self) -> DataConfig:
        parts = [
            p for p in (self.train_path, self.val_path, self.test_path) if isinstance(p, SplitPart)
        ]
        if parts and self.split is None:
            raise ValueError("split parts need data.split (the val and test shares and the seed)")
        if self.split is not None and len(parts) != sum(
            p is not None for p in (self.train_path, self.val_path, self.test_path)
        ):
            raise ValueError(
                "data.split divides one file: give train, val and test as parts of it"
            )
        return self

    @classmethod
    def parts_of(cls, file: Path, split: SplitConfig, **fields: Any) -> DataConfig:
        """A config whose train, val and (when split.test > 0) test are parts of one file."""
        test = SplitPart(file=file, part="test") if split.test > 0 else None
        return cls(train_path=SplitPart(file=file, part="train"), val_path=SplitPart(file=file, part="val"), test_path=test,
                   split=split, **fields)  # fmt: skip

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.label_columns or self.class_names or ()


class ModelConfig(_Strict):
    """`name_or_path` gives the tokenizer and (unless `from_config`) the weights.

    `from_config` builds the architecture from these config values with random weights: the
    tests' tiny BERT/RoBERTa and the GPU benchmark's roberta-base-sized model.
    """

    name_or_path: str = PACKAGED_MINILM
    max_length: int = Field(128, ge=8, le=4096)
    from_config: dict[str, Any] | None = None


class Hyperparams(_Strict):
    """Every setting a study may fix or search. Names are the Optuna parameter names."""

    learning_rate: float = Field(3e-5, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int | None = Field(None, ge=1)
    epochs: int = Field(3, ge=1)
    # Train only the first this-many of `epochs`, on the schedule of all `epochs`: retraining a
    # trial up to its best epoch then reproduces the weights the trial scored there.
    stop_after_epochs: int | None = Field(None, ge=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float | None = Field(None, ge=0, lt=1)
    precision: Precision = "auto"
    seed: int = 0
    # Speed: frozen word embeddings skip their gradient (a third of MiniLM's weights);
    # torch.compile pays a compile once per trial for faster steps.
    freeze_word_embeddings: bool = False
    compile: bool = False
    # Pad each batch to the next of a few fixed widths (trainers.batching.LENGTH_BUCKETS): with
    # `compile` on CUDA each width's CUDA graph is recorded once and replayed.
    length_buckets: bool = False
    log_every: int = Field(50, ge=1)
    # Imbalance and optimisation: losses for rare labels, per-label weights, learning rates by
    # depth, oversampling rows with the rarest labels.
    loss: LossName | None = None  # None: bce for multi-label, cross_entropy for multi-class
    pos_weight_power: float = Field(0.0, ge=0, le=1)
    pos_weight_cap: float = Field(50.0, gt=0)
    focal_gamma: float = Field(2.0, ge=0)
    focal_alpha: float | None = Field(None, ge=0, le=1)
    asl_gamma_pos: float = Field(0.0, ge=0)
    asl_gamma_neg: float = Field(4.0, ge=0)
    asl_clip: float = Field(0.05, ge=0, lt=1)
    class_weight_power: float = Field(0.0, ge=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    head_lr_multiplier: float = Field(1.0, gt=0)
    layer_lr_decay: float = Field(1.0, gt=0, le=1)
    rare_label_oversampling: float = Field(0.0, ge=0)
    # Training target = label + w * (annotator-agreement target - label); 0: the 0/1 labels.
    soft_label_weight: float = Field(0.0, ge=0, le=1)
    # Hand-made text features (lexicons, readability, TF-IDF terms) fused with the transformer's
    # pooled output.
    features: bool = False
    pooling: Pooling = "cls"
    tfidf_top_n: int = Field(300, ge=0)
    feature_dim: int = Field(64, ge=1)
    text_projection_dim: int = Field(256, ge=1)
    # Architecture settings a speed/quality (multi-objective) study searches: keep only the
    # backbone's first this-many encoder layers; measure the trained model dynamically
    # quantised to int8 (its validation metrics, speed and size are the int8 model's).
    layers_kept: int | None = Field(None, ge=1)
    int8: bool = False

    @property
    def epochs_to_run(self) -> int:
        return min(self.epochs, self.stop_after_epochs or self.epochs)


class TrainConfig(_Strict):
    task: Task
    data: DataConfig
    model: ModelConfig = ModelConfig()
    hyper: Hyperparams = Hyperparams()
    # Metric that picks the best epoch (its weights are kept) and what "better" means.
    monitor: str = "tuned_macro_f1"
    monitor_mode: Literal["max", "min"] = "max"
    device: str = "auto"
    # After training, measure the best epoch's model as it would be deployed (int8 when
    # hyper.int8): validation metrics, texts/s and size, for multi-objective studies.
    measure_deployed: bool = False
    # Save the best epoch's model here (trainers.checkpoint.save_run), for a run whose model is
    # used after it ends: a selection re-run that becomes an ensemble member.
    save_model_dir: Path | None = None

    @model_validator(mode="after")
    def _labels_match_task(self) -> TrainConfig:
        d = self.data
        if self.task == "multi_label" and not d.label_columns:
            raise ValueError("multi_label needs data.label_columns")
        if self.task == "multi_class" and not (d.label_column and d.class_names):
            raise ValueError("multi_class needs data.label_column and data.class_names")
        return self

    def improves(self, value: float, than: float) -> bool:
        """Whether `value` of the monitored metric is better than `than`."""
        return value > than if self.monitor_mode == "max" else value < than

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json_file(cls, path: str | Path) -> TrainConfig:
        return cls.model_validate(json.loads(Path(path).read_text()))
