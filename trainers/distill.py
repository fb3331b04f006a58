"""Knowledge distillation: a student trained on the training split towards its teacher's soft
probabilities and the labels together (Hinton et al. 2015), and the same loss as the recovery
fine-tune of a pruned model.

loss = alpha · T² · soft(student / T, teacher / T) + (1 − alpha) · the run's own task loss,

where soft is binary cross-entropy against the teacher's per-label sigmoid (multi-label) or the
KL divergence from the teacher's softmax (multi-class), both at temperature T; T² keeps the
soft term's gradients on the scale of the hard term's. Only train texts are ever used: the
teacher's logits are computed on them once, and validation only picks the best epoch.

The teacher's logits travel with the labels as the training split's targets (`[labels |
teacher logits]`), so trainers.loop.train_epoch (clipping, schedule, loss checks) trains the
student exactly as it trains a trial.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import get_linear_schedule_with_warmup, set_seed

from trainers.batching import TokenizedSplit, sorted_batches
from trainers.config import TrainConfig
from trainers.data import load_split
from trainers.loop import (
    Precision,
    Run,
    load_tokenized,
    pick_device,
    predict_probs,
    tokenize_split,
    train_epoch,
)
from trainers.losses import LossFn, build_loss
from trainers.metrics import compute_metrics
from trainers.optim import build_optimizer
from trainers.sampling import oversampling_weights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillSettings:
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the teacher's soft term; 0: the labels alone
    epochs: int = 2
    learning_rate: float = 1e-4
    batch_size: int = 32
    warmup_ratio: float = 0.06


class DistillationLoss:
    """`(student logits, targets) -> loss`. Training targets are `[labels | teacher logits]`;
    plain labels (validation) get the task loss alone, so validation losses stay comparable."""

    def __init__(
        self, task: str, hard: LossFn, n_outputs: int, temperature: float, alpha: float
    ) -> None:
        self.task, self.hard, self.n_outputs, self.temperature, self.alpha = (
            task,
            hard,
            n_outputs,
            temperature,
            alpha,
        )
        self.label_width = n_outputs if task == "multi_label" else 1

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if targets.dim() != 2 or targets.shape[1] != self.label_width + self.n_outputs:
            return self.hard(logits, targets)
        labels, teacher = targets[:, : self.label_width], targets[:, self.label_width :].float()
        labels = labels if self.task == "multi_label" else labels[:, 0].long()
        hard = self.hard(logits, labels) if self.alpha < 1 else logits.new_zeros(())
        return self.alpha * self.soft(logits, teacher) + (1 - self.alpha) * hard

    def soft(self, logits: Tensor, teacher: Tensor) -> Tensor:
        t = self.temperature
        student, teacher = logits.float() / t, teacher / t
        if self.task == "multi_label":
            term = F.binary_cross_entropy_with_logits(student, torch.sigmoid(teacher))
        else:
            term = F.kl_div(
                F.log_softmax(student, dim=-1),
                F.log_softmax(teacher, dim=-1),
                log_target=True,
                reduction="batchmean",
            )
        return term * t * t


def pack_targets(labels: np.ndarray, teacher_logits: np.ndarray) -> np.ndarray:
    """`[labels | teacher logits]` per row, float32 (a class id is exact in float32)."""
    labels = labels.reshape(len(labels), -1).astype(np.float32)
    return np.concatenate([labels, teacher_logits.astype(np.float32)], axis=1)


@torch.inference_mode()
def teacher_logits(
    model: nn.Module, split: TokenizedSplit, pad_id: int, batch_size: int = 128
) -> np.ndarray:
    """The teacher's logits for every row of `split` (eval mode: no dropout), in row order."""
    device = next(model.parameters()).device
    model.eval()
    out: np.ndarray | None = None
    for rows, inputs in split.batches(sorted_batches(split.lengths, batch_size), pad_id, device):
        logits = model(**inputs).logits.float().cpu().numpy()
        out = np.empty((len(split.ids), logits.shape[1]), dtype=np.float32) if out is None else out
        out[rows] = logits
    assert out is not None
    return out


def student_run(
    config: TrainConfig,
    model: nn.Module,
    tokenizer,
    extractor,
    teacher: np.ndarray,
    settings: DistillSettings,
) -> Run:
    """A training run of an already built `model` on the train split, with the distillation loss
    against `teacher` (its logits on train, row-aligned with the train CSV)."""
    hyper = config.hyper.model_copy(update={"learning_rate": settings.learning_rate, "batch_size": settings.batch_size,
                                            "epochs": settings.epochs, "warmup_ratio": settings.warmup_ratio,
                                            "stop_after_epochs": None, "rare_label_oversampling": 0.0})  # fmt: skip
    config = config.model_copy(update={"hyper": hyper})
    set_seed(hyper.seed)
    device = pick_device(config.device)
    model = model.to(device).train()
    if hyper.freeze_word_embeddings:  # as the teacher was trained
        model.get_input_embeddings().weight.requires_grad_(False)
    train = tokenize_split(
        config, tokenizer, load_split(config.data.train_path, config.data, config.task), extractor
    )
    train = dataclasses.replace(train, soft_targets=pack_targets(train.labels, teacher))
    names = config.data.label_names
    hard = build_loss(config.task, hyper, train.labels, num_classes=len(names))
    optimizer = build_optimizer(model, hyper, device.type)
    total = math.ceil(len(train.ids) / hyper.batch_size) * hyper.epochs
    return Run(
        config=config, device=device, precision=Precision.resolve(hyper.precision, device), tokenizer=tokenizer, train=train,
        val=load_tokenized(config, tokenizer, config.data.val_path, extractor), model=model, forward=model, extractor=extractor,
        loss_fn=DistillationLoss(config.task, hard, len(names), settings.temperature, settings.alpha), optimizer=optimizer,
        scheduler=get_linear_schedule_with_warmup(optimizer, int(hyper.warmup_ratio * total), total),
        scaler=torch.amp.GradScaler(device.type, enabled=False), sample_weights=oversampling_weights(train.labels, 0.0),
        rng=np.random.default_rng(hyper.seed),
    )  # fmt: skip


def fit_student(
    run: Run, monitor: str, maximize: bool, on_epoch: Callable[[int, dict], None] | None = None
) -> tuple[nn.Module, dict]:
    """Train for the settings' epochs; keep the epoch with the best validation `monitor`.
    Returns the model (best weights loaded) and that epoch's validation metrics."""
    best, best_state = None, None
    sign = 1 if maximize else -1
    for epoch in range(1, run.config.hyper.epochs + 1):
        stats = train_epoch(run, run.epoch_batches(), epoch)
        probs, val_loss, _ = predict_probs(run, run.val)
        metrics = {
            **compute_metrics(run.config.task, run.val.labels, probs, run.config.data.label_names),
            "val_loss": val_loss,
            "epoch": epoch,
            **stats,
        }
        if on_epoch:
            on_epoch(epoch, metrics)
        if best is None or sign * (metrics[monitor] - best[monitor]) > 0:
            best, best_state = metrics, copy.deepcopy(run.model.state_dict())
    assert best is not None and best_state is not None
    run.model.load_state_dict(best_state)
    return run.model.eval(), best
