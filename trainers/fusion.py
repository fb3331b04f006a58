"""A transformer's pooled text representation fused with the hand-made text features.

pooled text  -> dropout -> Linear(hidden, text_projection_dim) -> GELU --+
features     -> Linear(n_features, feature_dim) -> GELU -> dropout ------+-> concat -> MLP -> logits

The model is used whenever a run asks for features or for mean pooling; otherwise the plain
`AutoModelForSequenceClassification` head is kept (the classic experiments' model). It answers
like a transformers model (`model(**inputs).logits`), so the training loop stays generic; the
features arrive as one more forward keyword.

Saved as a directory: `fusion.json` (the head's shape), `fusion_head.safetensors` (every weight
outside the backbone) and `backbone/` (the transformer, via `save_pretrained`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, AutoModelForSequenceClassification, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from trainers.config import Hyperparams, ModelConfig, Pooling, Task
from trainers.model import (
    build_classifier,
    classifier_config,
    init_output_bias,
    instantiate,
    with_fastest_attention,
)

FUSION_FILE = "fusion.json"
HEAD_FILE = "fusion_head.safetensors"
BACKBONE_DIR = "backbone"
DEFAULT_DROPOUT = 0.1  # transformers' default hidden dropout, used when a run sets none


@dataclass(frozen=True)
class FusionShape:
    """Everything besides the weights that rebuilds the head; `num_features` 0: text only."""

    num_labels: int
    num_features: int
    pooling: Pooling
    text_projection_dim: int
    feature_dim: int
    dropout: float


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """The first token's state, or the mean over real tokens only: padding never enters the
    average, so a text's representation does not depend on the batch it is padded in."""
    if pooling == "cls":
        return hidden[:, 0]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class FusionClassifier(nn.Module):
    def __init__(self, backbone: PreTrainedModel, shape: FusionShape) -> None:
        super().__init__()
        self.backbone = backbone
        self.shape = shape
        p = shape.dropout
        self.text_proj = nn.Sequential(
            nn.Dropout(p),
            nn.Linear(backbone.config.hidden_size, shape.text_projection_dim),
            nn.GELU(),
        )
        fused = shape.text_projection_dim
        if shape.num_features:
            self.feature_proj = nn.Sequential(
                nn.Linear(shape.num_features, shape.feature_dim), nn.GELU(), nn.Dropout(p)
            )
            fused += shape.feature_dim
        hidden = max(fused // 2, shape.num_labels)
        self.head = nn.Sequential(
            nn.Dropout(p),
            nn.Linear(fused, hidden),
            nn.GELU(),
            nn.Dropout(p),
            nn.Linear(hidden, shape.num_labels),
        )

    @property
    def output_layer(self) -> nn.Linear:
        return self.head[-1]

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        features: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        if (features is None) != (self.shape.num_features == 0):
            raise ValueError(
                f"this model takes {self.shape.num_features} features per text; got {None if features is None else tuple(features.shape)}"
            )
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask
        ).last_hidden_state
        parts = [self.text_proj(pool(hidden, attention_mask, self.shape.pooling))]
        if features is not None:
            parts.append(self.feature_proj(features.to(parts[0].dtype)))
        return SequenceClassifierOutput(logits=self.head(torch.cat(parts, dim=-1)))

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.backbone.save_pretrained(directory / BACKBONE_DIR)
        head = {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith("backbone.")
        }
        save_file(head, str(directory / HEAD_FILE))
        (directory / FUSION_FILE).write_text(json.dumps(asdict(self.shape), indent=2))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> FusionClassifier:
        directory = Path(directory)
        shape = FusionShape(**json.loads((directory / FUSION_FILE).read_text()))
        backbone = with_fastest_attention(
            AutoModel.from_pretrained,
            directory / BACKBONE_DIR,
            local_files_only=True,
            use_safetensors=True,
        )
        model = cls(backbone, shape)
        missing, unexpected = model.load_state_dict(
            load_file(str(directory / HEAD_FILE)), strict=False
        )
        missing = [k for k in missing if not k.startswith("backbone.")]
        if missing or unexpected:
            raise ValueError(
                f"{directory / HEAD_FILE}: head weights do not match {FUSION_FILE} (missing {missing}, unexpected {unexpected})"
            )
        return model.eval()


def uses_fusion(hyper: Hyperparams) -> bool:
    return hyper.features or hyper.pooling == "mean"


def build_model(
    cfg: ModelConfig,
    task: Task,
    label_names: tuple[str, ...],
    train_labels: np.ndarray,
    hyper: Hyperparams,
    num_features: int = 0,
    pad_token_id: int | None = None,
) -> nn.Module:
    """The fusion model when `hyper` asks for features or mean pooling, else the plain
    transformers classifier; either way the output bias starts at the label prior."""
    if not uses_fusion(hyper):
        return _shallower(
            build_classifier(cfg, task, label_names, train_labels, hyper.dropout, pad_token_id),
            hyper,
        )
    backbone = instantiate(
        AutoModel, cfg, classifier_config(cfg, task, label_names, hyper.dropout), pad_token_id
    )
    shape = FusionShape(
        num_labels=len(label_names),
        num_features=num_features if hyper.features else 0,
        pooling=hyper.pooling,
        text_projection_dim=hyper.text_projection_dim,
        feature_dim=hyper.feature_dim,
        dropout=DEFAULT_DROPOUT if hyper.dropout is None else hyper.dropout,
    )
    model = FusionClassifier(backbone, shape)
    init_output_bias(model.output_layer, task, train_labels)
    return _shallower(model, hyper)


def _shallower(model: nn.Module, hyper: Hyperparams) -> nn.Module:
    """Keep the backbone's first `layers_kept` encoder layers (a searched architecture setting)."""
    if hyper.layers_kept is not None:
        from trainers.shrink import keep_layers

        keep_layers(model, range(hyper.layers_kept))
    return model


def load_model(directory: str | Path) -> nn.Module:
    """A model saved with `save_pretrained`, fusion or plain, in eval mode; safetensors only (a
    pickled `pytorch_model.bin` is never read). A seed ensemble loads each member this way."""
    from trainers.ensemble import SeedEnsemble, is_ensemble, member_dir

    if is_ensemble(directory):
        return SeedEnsemble.from_card(directory, lambda k: load_model(member_dir(directory, k)))
    if (Path(directory) / FUSION_FILE).is_file():
        return FusionClassifier.from_pretrained(directory)
    return with_fastest_attention(
        AutoModelForSequenceClassification.from_pretrained,
        directory,
        local_files_only=True,
        use_safetensors=True,
    ).eval()
