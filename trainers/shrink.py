"""Structural edits of a BERT-family encoder that remove parameters instead of zeroing them:
encoder layers, attention heads and feed-forward neurons are cut out of the weight matrices, so
the saved file and the compute shrink with them (zeroed weights are still stored and multiplied).

Works on encoders whose layers use BERT's module names (BERT, MiniLM, RoBERTa, ...):
`attention.self.{query,key,value}`, `attention.output.dense`, `intermediate.dense`,
`output.dense`. transformers 5 dropped `PreTrainedModel.prune_heads`; the slicing is done here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from trainers.errors import TrainerError


@dataclass(frozen=True)
class LayerShape:
    """What one encoder layer keeps: attention heads and feed-forward (intermediate) neurons."""

    heads: int
    neurons: int


@dataclass(frozen=True)
class EncoderShape:
    """Per-layer sizes of a shrunk encoder: applied to a freshly built model of the original
    architecture, it gives the tensors the saved weights fit (heads cannot be written in a config)."""

    layers: tuple[LayerShape, ...]

    def as_json(self) -> dict:
        return {"layers": [asdict(layer) for layer in self.layers]}

    @classmethod
    def from_json(cls, raw: dict) -> EncoderShape:
        return cls(tuple(LayerShape(**layer) for layer in raw["layers"]))


def backbone(model: nn.Module) -> nn.Module:
    """The transformer inside a classifier: a fusion model's `backbone`, else the base model."""
    inner = getattr(model, "backbone", None)
    return inner if isinstance(inner, nn.Module) else model.base_model


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    encoder = getattr(backbone(model), "encoder", None)
    layers = getattr(encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList) or not all(_is_bert_layer(layer) for layer in layers):
        raise TrainerError(
            f"{type(model).__name__}: structural compression needs a BERT-style encoder (encoder.layer[i].attention.self.query, ...)"
        )
    return layers


def _is_bert_layer(layer: nn.Module) -> bool:
    return all(
        hasattr(layer, name) for name in ("attention", "intermediate", "output")
    ) and hasattr(layer.attention, "self")


def keep_layers(model: nn.Module, indices: Sequence[int]) -> None:
    """Keep only these encoder layers, in this order; the config follows, so `save_pretrained`
    writes a model that `from_pretrained` rebuilds."""
    layers = encoder_layers(model)
    if not indices or any(not 0 <= i < len(layers) for i in indices):
        raise TrainerError(
            f"layers {list(indices)} are not a non-empty selection of the encoder's {len(layers)} layers"
        )
    kept = nn.ModuleList(layers[i] for i in indices)
    for position, layer in enumerate(kept):
        if hasattr(layer.attention.self, "layer_idx"):
            layer.attention.self.layer_idx = position
    backbone(model).encoder.layer = kept
    backbone(model).config.num_hidden_layers = len(kept)


def every_other_layer(n_layers: int) -> list[int]:
    """Layers 1, 3, 5, ... of the encoder: half its depth, ending with its last layer, whose
    output the classifier head was trained on."""
    return list(range(n_layers - 1, -1, -2))[::-1]


def prune_heads(layer: nn.Module, keep: Sequence[int]) -> None:
    """Keep these attention heads: rows of query/key/value and columns of the output projection."""
    attention = layer.attention.self
    size = attention.attention_head_size
    index = torch.cat([torch.arange(h * size, (h + 1) * size) for h in sorted(keep)])
    attention.query, attention.key, attention.value = (
        _slice(m, index, 0) for m in (attention.query, attention.key, attention.value)
    )
    layer.attention.output.dense = _slice(layer.attention.output.dense, index, 1)
    attention.num_attention_heads, attention.all_head_size = len(keep), len(index)


def prune_neurons(layer: nn.Module, keep: Sequence[int]) -> None:
    """Keep these feed-forward neurons: rows of the up-projection, columns of the down-projection."""
    index = torch.as_tensor(sorted(keep), dtype=torch.long)
    layer.intermediate.dense = _slice(layer.intermediate.dense, index, 0)
    layer.output.dense = _slice(layer.output.dense, index, 1)


def encoder_shape(model: nn.Module) -> EncoderShape:
    return EncoderShape(
        tuple(
            LayerShape(
                layer.attention.self.num_attention_heads, layer.intermediate.dense.out_features
            )
            for layer in encoder_layers(model)
        )
    )


def apply_shape(model: nn.Module, shape: EncoderShape) -> None:
    """Cut a freshly built model to `shape` (its first heads and neurons: the saved weights
    replace them all) so a shrunk model's weights can be loaded into it."""
    layers = encoder_layers(model)
    if len(layers) != len(shape.layers):
        raise TrainerError(
            f"the saved shape has {len(shape.layers)} layers, the architecture {len(layers)}"
        )
    for layer, kept in zip(layers, shape.layers, strict=True):
        prune_heads(layer, range(kept.heads))
        prune_neurons(layer, range(kept.neurons))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def _slice(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear holding only the `index` outputs (dim 0) or inputs (dim 1)."""
    weight = linear.weight.index_select(dim, index.to(linear.weight.device)).clone()
    out_features, in_features = weight.shape
    new = nn.Linear(
        in_features,
        out_features,
        bias=linear.bias is not None,
        device=weight.device,
        dtype=weight.dtype,
    )
    new.weight.copy_(weight)
    if linear.bias is not None:
        new.bias.copy_(linear.bias[index] if dim == 0 else linear.bias)
    return new
