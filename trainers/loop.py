"""The fine-tuning loop: reads top to bottom, one epoch at a time, one report per epoch."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup, set_seed

from trainers.batching import (
    LENGTH_BUCKETS,
    TokenizedSplit,
    length_grouped_batches,
    sorted_batches,
    to_device,
    tokenize_cached,
)
from trainers.config import TrainConfig
from trainers.data import LabelledSplit, load_split, soft_targets
from trainers.errors import TrainerError
from trainers.fusion import build_model
from trainers.losses import build_loss
from trainers.metrics import compute_metrics
from trainers.model import load_tokenizer, probabilities
from trainers.objectives import OBJECTIVE_METRICS
from trainers.optim import build_optimizer
from trainers.reporting import NullReporter, Reporter, Resources, report_resources
from trainers.sampling import oversampling_weights, weighted_epoch_indices

if TYPE_CHECKING:  # scikit-learn and the feature libraries load only for runs with features
    from trainers.features import TextFeatureExtractor

log = logging.getLogger(__name__)
MEASURE_AFTER_STEPS = 5  # steps after which a CUDA run's memory has reached its steady peak


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
                # bf16 autocast on this project's 2-core avx512_bf16 CPU: one MiniLM epoch on the
                # covid tweets had not finished after 15 min; fp32 takes 67 s.
                return cls(None, False)
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return cls(
            {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[name], name == "fp16"
        )

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_tokenized(
    config: TrainConfig, tokenizer, path, extractor: TextFeatureExtractor | None = None
) -> TokenizedSplit:
    """A split's token ids, with its hand-made features when given a fitted extractor."""
    return tokenize_split(config, tokenizer, load_split(path, config.data, config.task), extractor)


def tokenize_split(
    config: TrainConfig,
    tokenizer,
    split: LabelledSplit,
    extractor: TextFeatureExtractor | None = None,
) -> TokenizedSplit:
    ids = tokenize_cached(split.texts, tokenizer, config.model.max_length, config.data.cache_dir)
    features = extractor.transform(split.texts) if extractor is not None else None
    return TokenizedSplit(ids=ids, labels=split.labels, texts=split.texts, features=features)


def with_soft_targets(
    config: TrainConfig, train: TokenizedSplit, agreement: np.ndarray | None
) -> TokenizedSplit:
    """Training split with the annotators' agreement mixed into its targets, when asked;
    validation and test keep their 0/1 labels, so every metric stays comparable."""
    weight = config.hyper.soft_label_weight
    if weight == 0:
        return train
    if agreement is None:
        raise TrainerError(
            f"soft_label_weight {weight} needs data.agreement_suffix (the columns with annotator agreement)"
        )
    return dataclasses.replace(train, soft_targets=soft_targets(train.labels, agreement, weight))


def fit_features(
    config: TrainConfig, train: TokenizedSplit
) -> tuple[TokenizedSplit, TextFeatureExtractor | None]:
    """Fit the hand-made features on the training texts only (when the run uses them); every
    other split, and prediction, gets the training statistics through the returned extractor."""
    if not config.hyper.features:
        return train, None
    from trainers.features import TextFeatureExtractor

    extractor = TextFeatureExtractor(config.hyper.tfidf_top_n)
    return dataclasses.replace(train, features=extractor.fit_transform(train.texts)), extractor


@dataclass
class Run:
    """One prepared training run. `train_and_evaluate` drives it epoch by epoch; the benchmark
    times `train_epoch` and `predict_probs` on it, so what it measures is what studies run."""

    config: TrainConfig
    device: torch.device
    precision: Precision
    tokenizer: Any
    train: TokenizedSplit
    val: TokenizedSplit
    model: torch.nn.Module
    forward: Any  # the model, or its torch.compile wrapper
    extractor: TextFeatureExtractor | None  # fitted hand-made features, when the run uses them
    loss_fn: Any
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    sample_weights: np.ndarray
    rng: np.random.Generator

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def buckets(self) -> tuple[int, ...] | None:
        return LENGTH_BUCKETS if self.config.hyper.length_buckets else None

    def epoch_batches(self) -> list[np.ndarray]:
        """This epoch's row indices, batched by length (over-sampled rows when asked)."""
        hyper = self.config.hyper
        indices = (
            weighted_epoch_indices(self.sample_weights, self.rng)
            if hyper.rare_label_oversampling > 0
            else None
        )
        return length_grouped_batches(self.train.lengths, hyper.batch_size, self.rng, indices)


def prepare(config: TrainConfig) -> Run:
    """Data, model, loss, optimizer and schedule of one run, seeded."""
    hyper = config.hyper
    set_seed(hyper.seed)
    device = pick_device(config.device)
    precision = Precision.resolve(hyper.precision, device)
    if config.monitor not in OBJECTIVE_METRICS:
        raise TrainerError(f"monitor {config.monitor!r} is not one of {sorted(OBJECTIVE_METRICS)}")

    tokenizer = load_tokenizer(config.model)
    train_split = load_split(config.data.train_path, config.data, config.task)
    train, extractor = fit_features(config, tokenize_split(config, tokenizer, train_split))
    train = with_soft_targets(config, train, train_split.agreement)
    val = load_tokenized(config, tokenizer, config.data.val_path, extractor)
    label_names = config.data.label_names
    n_features = extractor.n_features if extractor is not None else 0
    model = build_model(
        config.model,
        config.task,
        label_names,
        train.labels,
        hyper,
        n_features,
        tokenizer.pad_token_id,
    ).to(device)
    if hyper.freeze_word_embeddings:
        # The embedding matrix is most of MiniLM's parameters; AdamW would rewrite all of it every step.
        model.get_input_embeddings().weight.requires_grad_(False)
    forward = (
        compile_model(model, device, fixed_shapes=hyper.length_buckets) if hyper.compile else model
    )

    loss_fn = build_loss(config.task, hyper, train.labels, num_classes=len(label_names))
    optimizer = build_optimizer(model, hyper, device.type)
    total_steps = math.ceil(len(train.ids) / hyper.batch_size) * hyper.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(hyper.warmup_ratio * total_steps), total_steps
    )
    return Run(
        config=config,
        device=device,
        precision=precision,
        tokenizer=tokenizer,
        train=train,
        val=val,
        model=model,
        forward=forward,
        extractor=extractor,
        loss_fn=loss_fn,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=torch.amp.GradScaler(device.type, enabled=precision.scaler),
        sample_weights=oversampling_weights(train.labels, hyper.rare_label_oversampling),
        rng=np.random.default_rng(hyper.seed),
    )


def compile_model(model: torch.nn.Module, device: torch.device, fixed_shapes: bool = False):
    """dynamic=True: one graph for every batch width and size, not a recompile for each; with
    bucketed widths (`fixed_shapes`) each of the few shapes gets its own specialised graph. On
    CUDA, "reduce-overhead" replays each shape's kernels as a CUDA graph: small batches of short
    comments are bound by kernel launches, not arithmetic."""
    return torch.compile(
        model, dynamic=not fixed_shapes, mode="reduce-overhead" if device.type == "cuda" else None
    )


def train_and_evaluate(
    config: TrainConfig, reporter: Reporter | None = None, keep_model: bool = False
) -> TrainResult:
    """Fine-tune on train, evaluate on val after every epoch, report, keep the best epoch."""
    reporter = reporter or NullReporter()
    keep_model = keep_model or config.save_model_dir is not None
    run = prepare(config)
    model = run.model

    history: list[dict] = []
    best: dict | None = None
    best_state = best_probs = None
    stopped = False
    for epoch in range(1, config.hyper.epochs_to_run + 1):
        measured = (
            (lambda: report_resources(reporter, measure_resources(run.device)))
            if epoch == 1 and run.device.type == "cuda"
            else None
        )
        train_stats = train_epoch(run, run.epoch_batches(), epoch, after_first_steps=measured)
        probs, val_loss, eval_stats = predict_probs(run, run.val)
        metrics = compute_metrics(config.task, run.val.labels, probs, config.data.label_names)
        metrics.update(val_loss=val_loss, epoch=epoch, **train_stats, **eval_stats)
        metrics["monitor_value"] = metrics[config.monitor]
        history.append(metrics)
        if best is None or config.improves(metrics["monitor_value"], best["monitor_value"]):
            best, best_probs = metrics, probs
            if keep_model or config.measure_deployed:
                best_state = copy.deepcopy(
                    {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                )
        if reporter.report(epoch, metrics):
            stopped = True
            break

    if (keep_model or config.measure_deployed) and best_state is not None:
        model.load_state_dict(best_state)
    assert best is not None
    extras: dict[str, Any] = {"feature_extractor": run.extractor}
    if config.measure_deployed:
        from trainers.measure import deployed_figures

        extras["deployed"] = deployed_figures(run)
    result = TrainResult(
        history=history,
        best_epoch=int(best["epoch"]),
        best_metrics=best,
        stopped_early=stopped,
        model=model if keep_model else None,
        tokenizer=run.tokenizer if keep_model else None,
        val_probs=best_probs,
        extras=extras,
    )
    if config.save_model_dir is not None and not stopped:  # a stopped run is not a finished model
        from trainers.checkpoint import save_run

        save_run(result, config, run.extractor)
    return result


def measure_resources(device: torch.device) -> Resources:
    """The device memory this process has reserved at its peak so far (CUDA only)."""
    return Resources(peak_device_memory_mb=torch.cuda.max_memory_reserved(device) / 2**20)


def train_epoch(run: Run, order: list[np.ndarray], epoch: int, after_first_steps=None) -> dict:
    """One pass over the batches in `order`. Nothing here waits for the device except the
    loss check every `log_every` steps. `after_first_steps` is called once, after
    MEASURE_AFTER_STEPS steps (or the last, if fewer)."""
    hyper, device, train = run.config.hyper, run.device, run.train
    run.model.train()
    start = time.perf_counter()
    batch_losses: list[torch.Tensor] = []
    real_tokens = padded_tokens = 0
    # No bar when stderr is not a terminal (a trial's log file): carriage returns make it unreadable.
    bar = tqdm(
        total=len(order),
        desc=f"epoch {epoch}",
        leave=False,
        file=sys.stderr,
        mininterval=2,
        disable=None,
    )
    for step, (rows, inputs) in enumerate(
        train.batches(order, run.pad_id, device, run.buckets), start=1
    ):
        if hyper.compile:
            torch.compiler.cudagraph_mark_step_begin()  # last step's graph outputs may be overwritten now
        targets = to_device(torch.as_tensor(train.targets[rows]), device)
        with run.precision.autocast(device):
            logits = run.forward(**inputs).logits
        loss = run.loss_fn(logits.float(), targets)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        if hyper.max_grad_norm is not None:
            run.scaler.unscale_(run.optimizer)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), hyper.max_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        batch_losses.append(loss.detach())
        real_tokens += int(train.lengths[rows].sum())  # host-side numpy: no device sync
        padded_tokens += inputs["input_ids"].numel()
        bar.update()
        if after_first_steps is not None and step == min(MEASURE_AFTER_STEPS, len(order)):
            after_first_steps()
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
        "real_tokens_per_s": real_tokens / seconds,
        "padding_share": 1 - real_tokens / max(padded_tokens, 1),
        "learning_rate_end": float(run.scheduler.get_last_lr()[0]),
    }


def _check_finite(value: float, epoch: int, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteLossError(
            f"training loss became {value} at epoch {epoch}, step {step}; lower the learning rate"
        )


@torch.no_grad()
def predict_probs(run: Run, split: TokenizedSplit) -> tuple[np.ndarray, float, dict]:
    """Probabilities in the split's row order, the mean loss, and eval speed. Batches are
    sorted by length and larger than in training (no activations are kept for backward);
    everything stays on the device until one copy at the end."""
    config, device = run.config, run.device
    run.model.eval()
    start = time.perf_counter()
    batch_size = config.hyper.eval_batch_size or max(128, 4 * config.hyper.batch_size)
    batches = sorted_batches(split.lengths, batch_size)
    probs, total_loss = [], torch.zeros((), device=device)
    for rows, inputs in split.batches(batches, run.pad_id, device, run.buckets):
        if config.hyper.compile:
            torch.compiler.cudagraph_mark_step_begin()
        with run.precision.autocast(device):
            logits = run.forward(**inputs).logits.float()
        total_loss += run.loss_fn(
            logits, to_device(torch.as_tensor(split.labels[rows]), device)
        ) * len(rows)
        probs.append(probabilities(logits, config.task))
    out = np.empty((len(split.ids), len(config.data.label_names)), dtype=np.float32)
    out[np.concatenate(batches)] = torch.cat(probs).cpu().numpy()
    mean_loss = float(total_loss.item() / len(split.ids))
    seconds = time.perf_counter() - start
    return out, mean_loss, {"eval_time_s": seconds, "eval_samples_per_s": len(split.ids) / seconds}
