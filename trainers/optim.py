"""AdamW parameter groups: a learning-rate multiplier for the freshly initialised head,
layer-wise learning-rate decay down the pretrained encoder, and no weight decay on biases and
normalisation weights (decaying those only pulls them towards zero, which no prior justifies).

The head is every parameter outside the backbone, the backbone being the model's `backbone`
attribute (the fusion model) or else its transformers base model (`model.base_model_prefix`:
`bert`, `roberta`, `distilbert`, ...). The backbone's pooler counts as head: the pretrained
checkpoints we use don't train it for classification, and RoBERTa/DistilBERT heads hold their
own dense layer in its place.

The lr scheduler scales each group's initial lr, so these multipliers hold throughout training.
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from trainers.config import Hyperparams

# `bert.encoder.layer.3.`, `distilbert.transformer.layer.3.`, `model.layers.3.`
_LAYER_INDEX = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def parameter_groups(model: nn.Module, hyper: Hyperparams) -> list[dict[str, Any]]:
    """Trainable parameters grouped by identical (lr, weight_decay), in model order.

    With N encoder layers, layer i (0-based) gets lr · decay^(N − i), the embeddings
    lr · decay^(N + 1), other backbone parameters (e.g. a final norm) lr, and the head
    lr · head_lr_multiplier. Frozen parameters are left out.
    """
    prefix = _backbone_prefix(model)
    num_layers = _num_layers(model, prefix)
    no_decay = _no_decay_names(model)
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        part, scale = _part_and_lr_scale(name, prefix, num_layers, hyper)
        weight_decay = 0.0 if name in no_decay else hyper.weight_decay
        key = (hyper.learning_rate * scale, weight_decay)
        group = groups.setdefault(
            key, {"params": [], "lr": key[0], "weight_decay": weight_decay, "parts": {}}
        )
        group["params"].append(param)
        group["parts"][part] = None
    return [_named(group) for group in groups.values()]


def build_optimizer(model: nn.Module, hyper: Hyperparams, device_type: str) -> torch.optim.AdamW:
    """AdamW over `parameter_groups`, fused: on CUDA one kernel per step instead of one
    multi-tensor launch per group and state tensor; on a CPU one pass over each tensor instead
    of seven (the step is memory-bound). Move the model to its device first."""
    fused = True if device_type in ("cuda", "cpu") else None
    return torch.optim.AdamW(parameter_groups(model, hyper), lr=hyper.learning_rate, fused=fused)


def _backbone_prefix(model: nn.Module) -> str:
    """Name prefix of the backbone's parameters; "" when the model is itself a base model."""
    if isinstance(getattr(model, "backbone", None), nn.Module):
        return "backbone."
    base = getattr(model, "base_model_prefix", "")
    return f"{base}." if base and isinstance(getattr(model, base, None), nn.Module) else ""


def _in_backbone(name: str, prefix: str) -> bool:
    return name.startswith(prefix) and not name[len(prefix) :].startswith("pooler.")


def _num_layers(model: nn.Module, prefix: str) -> int:
    """Counted over all parameters, frozen too, so freezing doesn't shift the decay."""
    indices = [
        int(match.group(1))
        for name, _ in model.named_parameters()
        if _in_backbone(name, prefix) and (match := _LAYER_INDEX.search(name[len(prefix) :]))
    ]
    return max(indices, default=-1) + 1


def _part_and_lr_scale(
    name: str, prefix: str, num_layers: int, hyper: Hyperparams
) -> tuple[str, float]:
    if not _in_backbone(name, prefix):
        return "head", hyper.head_lr_multiplier
    rest = name[len(prefix) :]
    if match := _LAYER_INDEX.search(rest):
        index = int(match.group(1))
        return f"layer.{index}", hyper.layer_lr_decay ** (num_layers - index)
    if "embed" in rest:
        return "embeddings", hyper.layer_lr_decay ** (num_layers + 1)
    return "backbone", 1.0


def _no_decay_names(model: nn.Module) -> set[str]:
    """Biases and the weights of normalisation modules (LayerNorm, RMSNorm, ...)."""
    names = set()
    for module_name, module in model.named_modules():
        is_norm = isinstance(module, nn.LayerNorm) or "norm" in type(module).__name__.lower()
        for param_name, _ in module.named_parameters(recurse=False):
            if is_norm or param_name == "bias":
                names.add(f"{module_name}.{param_name}" if module_name else param_name)
    return names


def _named(group: dict[str, Any]) -> dict[str, Any]:
    """Replace the collected parts by a readable name, e.g. "layer.1+head/no_decay"."""
    parts = "+".join(group.pop("parts"))
    return {**group, "name": parts if group["weight_decay"] else f"{parts}/no_decay"}
