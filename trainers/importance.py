"""How much the training loss depends on each attention head and feed-forward neuron.

Importance is gradient × activation at the input of the layer that consumes the unit (the
first-order Taylor estimate of the loss change when the unit is removed; Molchanov et al. 2017,
and for heads Michel et al. 2019's head-mask gradient, which equals it): for a head, the sum of
context · ∂loss/∂context over its slice of the attention output projection's input; for a
neuron, activation · ∂loss/∂activation at the down-projection's input. Per batch the products
are summed over texts, tokens (and a head's features); the absolute values add up over batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from trainers.batching import TokenizedSplit, sorted_batches
from trainers.shrink import encoder_layers


@dataclass(frozen=True)
class Importance:
    heads: np.ndarray  # (layers, heads)
    neurons: np.ndarray  # (layers, intermediate size)

    def top_heads(self, layer: int, n: int) -> list[int]:
        return sorted(np.argsort(-self.heads[layer], kind="stable")[:n].tolist())

    def top_neurons(self, layer: int, n: int) -> list[int]:
        return sorted(np.argsort(-self.neurons[layer], kind="stable")[:n].tolist())


class _InputProbe:
    """Keeps a Linear's input with its gradient; after each backward adds |Σ input · grad| per
    unit, a unit being `group` consecutive input features (a head's slice, or one neuron)."""

    def __init__(self, linear: nn.Linear, group: int = 1) -> None:
        self.group = group
        self.total = torch.zeros(linear.in_features // group, dtype=torch.float64)
        self.inputs: torch.Tensor | None = None
        self.handle = linear.register_forward_pre_hook(self._keep)

    def _keep(self, module: nn.Module, args: tuple) -> None:
        self.inputs = args[0]
        self.inputs.retain_grad()

    def collect(self) -> None:
        assert self.inputs is not None and self.inputs.grad is not None
        product = (self.inputs * self.inputs.grad).detach().double()
        self.total += product.reshape(-1, len(self.total), self.group).sum(dim=(0, 2)).abs().cpu()
        self.inputs = None


def measure_importance(
    model: nn.Module, split: TokenizedSplit, loss_fn, pad_id: int, batch_size: int = 32
) -> Importance:
    """Importance of every head and neuron on `split` (use train texts), against `loss_fn` of
    the split's targets. Weights are left unchanged; gradients are cleared."""
    layers = encoder_layers(model)
    device = next(model.parameters()).device
    heads = [
        _InputProbe(layer.attention.output.dense, layer.attention.self.attention_head_size)
        for layer in layers
    ]
    neurons = [_InputProbe(layer.output.dense) for layer in layers]
    was_training = model.training
    model.eval()  # no dropout: every unit's contribution counts as it will at inference
    try:
        for rows, inputs in split.batches(
            sorted_batches(split.lengths, batch_size), pad_id, device
        ):
            model.zero_grad(set_to_none=True)
            loss_fn(
                model(**inputs).logits.float(), torch.as_tensor(split.targets[rows], device=device)
            ).backward()
            for probe in (*heads, *neurons):
                probe.collect()
    finally:
        for probe in (*heads, *neurons):
            probe.handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return Importance(
        heads=np.stack([p.total.numpy() for p in heads]),
        neurons=np.stack([p.total.numpy() for p in neurons]),
    )
