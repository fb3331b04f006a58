"""A classifier's architecture and its weights as separate data files, for models that
`from_pretrained` cannot rebuild alone (heads removed per layer, int8 weights).

`architecture/`: the transformer's config.json and, for a fusion model, fusion.json. Building
from it gives an untrained model of the right type, which the caller reshapes (trainers.shrink)
or quantises (trainers.quantize) before the saved tensors are loaded into it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

from trainers.ensemble import SeedEnsemble, is_ensemble
from trainers.fusion import FUSION_FILE, FusionClassifier, FusionShape

ARCHITECTURE_DIR = "architecture"


def save_architecture(model: nn.Module, directory: Path) -> None:
    """One member's architecture for a seed ensemble (all members share it), with ensemble.json."""
    out = Path(directory) / ARCHITECTURE_DIR
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(model, SeedEnsemble):
        model.write_card(out)
        model = model.members[0]
    if isinstance(model, FusionClassifier):
        model.backbone.config.save_pretrained(out)
        (out / FUSION_FILE).write_text(json.dumps(asdict(model.shape), indent=2))
    else:
        model.config.save_pretrained(out)


def empty_model(directory: Path) -> nn.Module:
    """The saved architecture with untrained weights, in eval mode."""
    path = Path(directory) / ARCHITECTURE_DIR
    if is_ensemble(path):  # every member has the one architecture saved here
        return SeedEnsemble.from_card(path, lambda _: _empty_member(path))
    return _empty_member(path)


def _empty_member(path: Path) -> nn.Module:
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    if (path / FUSION_FILE).is_file():
        shape = FusionShape(**json.loads((path / FUSION_FILE).read_text()))
        model = FusionClassifier(AutoModel.from_config(config, attn_implementation="sdpa"), shape)
    else:
        model = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    return model.eval()
