"""The fine-tuning loop: reads top to bottom, one epoch at a time, one report per epoch."""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup, set_seed

from trainers.config import TrainConfig
from trainers.batching import TokenizedSplit, length_grouped_batches, sorted_batches, tokenize_cached
from trainers.data import LabelledSplit, load_split
from trainers.errors import TrainerError
from trainers.losses import build_loss
from trainers.metrics import OBJECTIVE_METRICS, compute_metrics
from trainers.model import build_classifier, load_tokenizer
from trainers.optim import build_optimizer
from trainers.reporting import NullReporter, Reporter
from trainers.sampling import oversampling_weights, weighted_epoch_indices

log = logging.getLogger(__name__)


class NonFiniteLossError(TrainerError):
    """The training loss became NaN or infinite (learning rate too high, fp16 overflow)."""


@dataclass
class TrainResult:
    history: list[dict]
    best_epoch: int
    best_metrics: dict
    stopped_early: bool
    model: torch.nn.Module | None = None  # best epoch's weights, when asked to keep them
    tokenizer: object = None
    val_probs: np.ndarray | None = None  # best epoch's validation probabilities
    extras: dict = field(default_factory=dict)

    @property
    def best_value(self) -> float:
        return self.best_metrics["monitor_value"]


@dataclass(frozen=True)
class Precision:
    """Autocast dtype (None: full fp32) and whether fp16 needs a gradient scaler."""

    dtype: torch.dtype | None
    scaler: bool

    @classmethod
    def resolve(cls, name: str, device: torch.device) -> Precision:
        if name == "fp16" and device.type != "cuda":
            raise TrainerError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        if name == "auto":
            if device.type != "cuda":
                return cls(None, False)
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return cls({"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name], name == "fp16")

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenized(config: TrainConfig, tokenizer, path) -> TokenizedSplit:
    split: LabelledSplit = load_split(path, config.data, config.task)
    ids = tokenize_cached(split.texts, tokenizer, config.model.max_length, config.data.cache_dir)
    return TokenizedSplit(ids=ids, labels=split.labels, texts=split.texts)


def train_and_evaluate(config: TrainConfig, reporter: Reporter | None = None, keep_model: bool = False) -> TrainResult:
    """Fine-tune on train, evaluate on val after every epoch, report, keep the best epoch."""
    reporter = reporter or NullReporter()
    hyper = config.hyper
    set_seed(hyper.seed)
    device = pick_device(config.device)
    precision = Precision.resolve(hyper.precision, device)
    if config.monitor not in OBJECTIVE_METRICS:
        raise TrainerError(f"monitor {config.monitor!r} is not one of {sorted(OBJECTIVE_METRICS)}")

    tokenizer = load_tokenizer(config.model)
    train = load_tokenized(config, tokenizer, config.data.train_path)
    val = load_tokenized(config, tokenizer, config.data.val_path)
    label_names = config.data.label_names
    model = build_classifier(config.model, config.task, label_names, train.labels, hyper.dropout, tokenizer.pad_token_id).to(device)
    if hyper.freeze_word_embeddings:
        # The embedding matrix is most of MiniLM's parameters; AdamW would rewrite all of it every step.
        model.get_input_embeddings().weight.requires_grad_(False)
    forward = torch.compile(model) if hyper.compile else model

    loss_fn = build_loss(config.task, hyper, train.labels, num_classes=len(label_names))
    optimizer = build_optimizer(model, hyper, device.type)
    steps_per_epoch = math.ceil(len(train.ids) / hyper.batch_size)
    total_steps = steps_per_epoch * hyper.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hyper.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    sample_weights = oversampling_weights(train.labels, hyper.rare_label_oversampling)
    rng = np.random.default_rng(hyper.seed)
    pad_id = tokenizer.pad_token_id

    history: list[dict] = []
    best: dict | None = None
    best_state = best_probs = None
    stopped = False
    sign = 1 if config.monitor_mode == "max" else -1
    for epoch in range(1, hyper.epochs + 1):
        indices = weighted_epoch_indices(sample_weights, rng) if hyper.rare_label_oversampling > 0 else None
        order = length_grouped_batches(train.lengths, hyper.batch_size, rng, indices)
        model.train()
        train_stats = _train_epoch(forward, train, order, pad_id, device, precision, loss_fn, optimizer, scheduler, scaler, hyper, epoch)
        probs, val_loss, eval_stats = predict_probs(forward, val, pad_id, device, precision, config, loss_fn)
        metrics = compute_metrics(config.task, val.labels, probs, label_names)
        metrics.update(val_loss=val_loss, epoch=epoch, **train_stats, **eval_stats)
        metrics["monitor_value"] = metrics[config.monitor]
        history.append(metrics)
        if best is None or sign * (metrics["monitor_value"] - best["monitor_value"]) > 0:
            best, best_probs = metrics, probs
            if keep_model:
                best_state = copy.deepcopy({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        if reporter.report(epoch, metrics):
            stopped = True
            break

    if keep_model and best_state is not None:
        model.load_state_dict(best_state)
    assert best is not None
    return TrainResult(
        history=history,
        best_epoch=int(best["epoch"]),
        best_metrics=best,
        stopped_early=stopped,
        model=model if keep_model else None,
        tokenizer=tokenizer if keep_model else None,
        val_probs=best_probs,
    )


def _train_epoch(model, train, order, pad_id, device, precision, loss_fn, optimizer, scheduler, scaler, hyper, epoch) -> dict:
    start = time.perf_counter()
    batch_losses: list[torch.Tensor] = []
    real_tokens = padded_tokens = 0
    bar = tqdm(total=len(order), desc=f"epoch {epoch}", leave=False, file=sys.stderr, mininterval=2)
    for step, (rows, inputs) in enumerate(train.batches(order, pad_id, device), start=1):
        targets = torch.as_tensor(train.labels[rows]).to(device, non_blocking=True)
        with precision.autocast(device):
            logits = model(**inputs).logits
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if hyper.max_grad_norm is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), hyper.max_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        batch_losses.append(loss.detach())
        real_tokens += int(sum(len(train.ids[i]) for i in rows))
        padded_tokens += inputs["input_ids"].numel()
        bar.update()
        if step % hyper.log_every == 0:  # the only host sync inside the epoch
            recent = torch.stack(batch_losses[-hyper.log_every :]).float().mean().item()
            _check_finite(recent, epoch, step)
            bar.set_postfix(loss=f"{recent:.4f}")
    bar.close()
    losses = torch.stack(batch_losses).float().cpu().numpy()
    _check_finite(float(losses.mean()), epoch, len(order))
    seconds = time.perf_counter() - start
    n = sum(len(r) for r in order)
    return {
        "train_loss": float(losses.mean()),
        "train_loss_first_batches": float(losses[: max(1, len(losses) // 10)].mean()),
        "batch_loss_cv": float(losses.std() / max(abs(losses.mean()), 1e-12)),
        "epoch_time_s": seconds,
        "train_samples_per_s": n / seconds,
        "padding_share": 1 - real_tokens / max(padded_tokens, 1),
        "learning_rate_end": float(scheduler.get_last_lr()[0]),
    }


def _check_finite(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteLossError(f"training loss became {value} at epoch {epoch}, step {step}; lower the learning rate")


@torch.no_grad()
def predict_probs(model, split: TokenizedSplit, pad_id: int, device, precision: Precision, config: TrainConfig, loss_fn=None):
    """Probabilities in the split's row order, the mean loss (if `loss_fn`), and eval speed."""
    model.eval()
    start = time.perf_counter()
    batch_size = config.hyper.eval_batch_size or max(128, 4 * config.hyper.batch_size)
    out = np.zeros((len(split.ids), len(config.data.label_names)), dtype=np.float32)
    total_loss = torch.zeros((), device=device)
    for rows, inputs in split.batches(sorted_batches(split.lengths, batch_size), pad_id, device):
        with precision.autocast(device):
            logits = model(**inputs).logits.float()
        if loss_fn is not None:
            targets = torch.as_tensor(split.labels[rows]).to(device)
            total_loss += loss_fn(logits, targets) * len(rows)
        probs = torch.sigmoid(logits) if config.task == "multi_label" else torch.softmax(logits, dim=-1)
        out[rows] = probs.cpu().numpy()
    seconds = time.perf_counter() - start
    mean_loss = float(total_loss.item() / len(split.ids)) if loss_fn is not None else math.nan
    return out, mean_loss, {"eval_time_s": seconds, "eval_samples_per_s": len(split.ids) / seconds}
