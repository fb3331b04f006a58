"""What every variant directory shares with the fp32 model: tokenizer, labels, features' state,
and the training configuration a variant's own training (pruning recovery, distillation) starts from."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpo.deploy.settings import TeacherLoss
from hpo.errors import HpoError
from hpo.search_space import replay
from hpo.spec import StudySpec
from hpo.stored import BestMetrics
from trainers.checkpoint import BLEND_PREFIXES
from trainers.config import TrainConfig

SHARED_PREFIXES = (
    "tokenizer",
    "special_tokens",
    "vocab",
    "added_tokens",
    "labels.json",
    "features.",
    *BLEND_PREFIXES,
)


@dataclass(frozen=True)
class Source:
    """The retrained model a study's variants are made from."""

    spec: StudySpec
    best_dir: Path
    metrics: BestMetrics
    config: TrainConfig

    @classmethod
    def open(cls, spec: StudySpec, best_dir: Path, data_dir: Path) -> Source:
        metrics = BestMetrics.read(best_dir)
        if metrics is None:
            raise HpoError(
                f"{best_dir}: no retrained model ({BestMetrics.FILENAME} missing); run `hpo retrain {spec.name}` first"
            )
        params = replay(spec, metrics.params)
        config = spec.train_config(data_dir, params, seed=spec.sampler.seed + metrics.trial)
        if config.data.test_path is None:
            raise HpoError(
                f"study {spec.name}: data.test is not set; the deployment report scores each variant on test"
            )
        return cls(spec, Path(best_dir), metrics, config)


@dataclass(frozen=True)
class Teacher:
    """The fp32 model on CPU (trainers.checkpoint's loaded best), the train split tokenised for
    it and its logits there: what the pruning recovery and the distillation learn from."""

    best: Any
    train: Any
    logits: Any

    @classmethod
    def load(cls, source: Source) -> Teacher:
        from trainers.checkpoint import load_best
        from trainers.distill import teacher_logits
        from trainers.loop import load_tokenized

        best = load_best(source.best_dir, device="cpu")
        config = source.config
        train = load_tokenized(config, best.tokenizer, config.data.train_path, best.extractor)
        return cls(best, train, teacher_logits(best.model, train, best.tokenizer.pad_token_id))

    def teach(self, config: TrainConfig, student, tokenizer, settings: TeacherLoss, what: str):
        """Train `student` on train towards this teacher's soft probabilities and the labels
        (its learning rate and batch size default to the trial's); returns the student at its best validation epoch, that epoch's metrics
        and the settings used."""
        from trainers.distill import DistillSettings, fit_student, student_run

        chosen = DistillSettings(
            settings.temperature,
            settings.alpha,
            settings.epochs,
            settings.learning_rate or config.hyper.learning_rate,
            settings.batch_size or config.hyper.batch_size,
        )
        run = student_run(config, student, tokenizer, self.best.extractor, self.logits, chosen)
        student, best = fit_student(
            run, config.monitor, config.monitor_mode == "max", epoch_printer(what)
        )
        return student, best, chosen


def copy_shared_files(source: Path, target: Path, tokenizer: bool = True) -> None:
    """Tokenizer files (unless the variant writes its own), labels.json, the features' state and
    the blend's side models: every variant mixes in the same side models as the fp32 model."""
    target.mkdir(parents=True, exist_ok=True)
    for path in Path(source).iterdir():
        if (
            path.is_file()
            and path.name.startswith(SHARED_PREFIXES)
            and (tokenizer or not _is_tokenizer_file(path.name))
        ):
            shutil.copyfile(path, target / path.name)


def fresh_dir(path: Path) -> Path:
    """An empty directory: a variant built again never keeps files of the previous build."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _is_tokenizer_file(name: str) -> bool:
    return name.startswith(("tokenizer", "special_tokens", "vocab", "added_tokens"))


def epoch_printer(what: str):
    """One line per epoch of a variant's training, as `hpo retrain` prints its epochs."""

    def report(epoch: int, metrics: dict) -> None:
        keys = (
            "train_loss",
            "val_loss",
            "macro_roc_auc",
            "tuned_macro_f1",
            "accuracy",
            "macro_f1",
            "epoch_time_s",
        )
        shown = "  ".join(
            f"{k}={metrics[k]:.4f}" for k in keys if isinstance(metrics.get(k), float)
        )
        print(f"  {what} epoch {epoch}: {shown}", flush=True)

    return report
