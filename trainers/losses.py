"""Losses for imbalanced labels, chosen by `Hyperparams.loss`.

Every multi-label loss is written as a per-element weighting of the two BCE terms and averaged
over all elements, so with its knobs at zero it *is* `F.binary_cross_entropy_with_logits`
(reduction "mean"): a study comparing losses compares like with like. Inputs are cast to
float32 first, because under bf16 autocast the logits arrive in bf16, whose 8-bit mantissa
ruins log-probabilities of confident predictions.

The per-label `pos_weight` (from `pos_weight_power`) scales the positive term of all three
multi-label losses, so that knob means the same thing whichever loss a trial picked.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from trainers.config import Hyperparams

LossFn = Callable[[Tensor, Tensor], Tensor]

_MULTI_LABEL_LOSSES = ("bce", "focal", "asymmetric")
_MULTI_CLASS_LOSSES = ("cross_entropy",)


def positive_weights(train_labels: np.ndarray, power: float, cap: float) -> Tensor:
    """Per-label `min(cap, ((1 - p) / p) ** power)` from train prevalence `p`.

    power 0 gives 1 (capped) for every label, power 1 the full negatives-to-positives ratio
    that balances a label's two terms. A label never positive in train gets `cap` (for
    power > 0): its ratio is infinite, and it has no positives to weight anyway.
    """
    labels = np.asarray(train_labels, dtype=np.float64)
    if labels.ndim != 2:
        raise ValueError(f"multi-label train labels must be (n, L), got shape {labels.shape}")
    p = labels.mean(axis=0)
    ratio = np.divide(1.0 - p, p, out=np.full_like(p, np.inf), where=p > 0)
    return torch.as_tensor(np.minimum(cap, ratio**power), dtype=torch.float32)


def class_weights(
    train_labels: np.ndarray, power: float, num_classes: int | None = None
) -> Tensor:
    """Per-class `(n / (K * count_c)) ** power`: power 1 is scikit-learn's "balanced".

    A class absent from train counts as one example, so its weight stays finite (label
    smoothing puts target mass on every class, so an infinite weight would give a NaN loss).
    """
    labels = np.asarray(train_labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"multi-class train labels must be integer class ids (n,), got {labels.dtype} {labels.shape}"
        )
    counts = np.maximum(np.bincount(labels, minlength=num_classes or 0), 1)
    if num_classes is not None and len(counts) != num_classes:
        raise ValueError(
            f"train labels hold class id {labels.max()} but num_classes is {num_classes}"
        )
    return torch.as_tensor((len(labels) / (len(counts) * counts)) ** power, dtype=torch.float32)


def bce_loss(logits: Tensor, targets: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    return F.binary_cross_entropy_with_logits(
        logits.float(), targets.float(), pos_weight=pos_weight
    )


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float,
    alpha: float | None = None,
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Sigmoid focal loss (Lin et al. 2017), as torchvision's `sigmoid_focal_loss` but mean-reduced.

    The modulating factors `(1 - p)^γ` and `p^γ` are computed as `exp(γ · logsigmoid)`, which
    keeps their gradient finite for 0 < γ < 1 on saturated logits.
    """
    x, y = logits.float(), targets.float()
    pos = _pos_term(x, pos_weight) * torch.exp(gamma * F.logsigmoid(-x))
    neg = F.logsigmoid(-x) * torch.exp(gamma * F.logsigmoid(x))
    if alpha is not None:
        pos, neg = alpha * pos, (1 - alpha) * neg
    return -(y * pos + (1 - y) * neg).mean()


def asymmetric_loss(
    logits: Tensor,
    targets: Tensor,
    gamma_pos: float,
    gamma_neg: float,
    clip: float,
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Asymmetric loss (Ridnik et al. 2021), mean-reduced.

    Negatives use the shifted probability `p_m = max(p - clip, 0)`: easy negatives (p ≤ clip)
    contribute nothing, and mislabelled "negatives" with p near 1 are bounded. Their term is
    `p_m^γ− · log(1 - p_m)`; positives are focal with γ+.
    """
    x, y = logits.float(), targets.float()
    pos = _pos_term(x, pos_weight) * torch.exp(gamma_pos * F.logsigmoid(-x))
    if clip > 0:
        # 1 - p_m = min(1, (1 - p) + clip), with 1 - p = sigmoid(-x) exact for large x.
        log_not_pm = torch.log((torch.sigmoid(-x) + clip).clamp(max=1.0))
        log_pm = torch.log((torch.sigmoid(x) - clip).clamp(min=torch.finfo(x.dtype).tiny))
    else:
        log_not_pm, log_pm = F.logsigmoid(-x), F.logsigmoid(x)
    neg = log_not_pm * torch.exp(gamma_neg * log_pm)
    return -(y * pos + (1 - y) * neg).mean()


def cross_entropy_loss(
    logits: Tensor, targets: Tensor, weight: Tensor | None = None, label_smoothing: float = 0.0
) -> Tensor:
    return F.cross_entropy(logits.float(), targets, weight=weight, label_smoothing=label_smoothing)


def build_loss(
    task: str, hyper: Hyperparams, train_labels: np.ndarray, num_classes: int | None = None
) -> LossFn:
    """The `(logits, targets) -> scalar` loss a trial trains with.

    `num_classes` (multi-class) sizes the class weights when the last classes are absent from
    train; by default it is `max(train_labels) + 1`.
    """
    if task == "multi_label":
        return _multi_label_loss(hyper, train_labels)
    if task == "multi_class":
        return _multi_class_loss(hyper, train_labels, num_classes)
    raise ValueError(f"unknown task {task!r}: expected 'multi_label' or 'multi_class'")


def _multi_label_loss(hyper: Hyperparams, train_labels: np.ndarray) -> LossFn:
    name = hyper.loss or "bce"
    if name not in _MULTI_LABEL_LOSSES:
        raise ValueError(
            f"loss {name!r} is not a multi-label loss; use one of {_MULTI_LABEL_LOSSES}"
        )
    pos_weight = positive_weights(train_labels, hyper.pos_weight_power, hyper.pos_weight_cap)
    if name == "focal":
        fn = partial(focal_loss, gamma=hyper.focal_gamma, alpha=hyper.focal_alpha)
    elif name == "asymmetric":
        fn = partial(
            asymmetric_loss,
            gamma_pos=hyper.asl_gamma_pos,
            gamma_neg=hyper.asl_gamma_neg,
            clip=hyper.asl_clip,
        )
    else:
        fn = bce_loss
    return _WeightedLoss(fn, "pos_weight", pos_weight)


def _multi_class_loss(
    hyper: Hyperparams, train_labels: np.ndarray, num_classes: int | None
) -> LossFn:
    name = hyper.loss or "cross_entropy"
    if name not in _MULTI_CLASS_LOSSES:
        raise ValueError(
            f"loss {name!r} is not a multi-class loss; use one of {_MULTI_CLASS_LOSSES}"
        )
    weight = class_weights(train_labels, hyper.class_weight_power, num_classes)
    fn = partial(cross_entropy_loss, label_smoothing=hyper.label_smoothing)
    return _WeightedLoss(fn, "weight", weight)


class _WeightedLoss:
    """A loss with its weight tensor, moved to the logits' device once rather than every step."""

    def __init__(self, fn: Callable[..., Tensor], weight_arg: str, weight: Tensor) -> None:
        self.fn, self.weight_arg, self.weight = fn, weight_arg, weight

    def __call__(self, logits: Tensor, targets: Tensor) -> Tensor:
        if self.weight.device != logits.device:
            self.weight = self.weight.to(logits.device)
        return self.fn(logits, targets, **{self.weight_arg: self.weight})


def _pos_term(x: Tensor, pos_weight: Tensor | None) -> Tensor:
    """log p, scaled per label by `pos_weight` as BCE's own `pos_weight` does."""
    log_p = F.logsigmoid(x)
    return log_p if pos_weight is None else pos_weight * log_p
