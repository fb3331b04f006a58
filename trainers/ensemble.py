"""A seed ensemble: the same configuration trained with several seeds, delivered as one model
whose probabilities are the mean of its members'.

On a small validation split one seed's score is partly luck; averaging seeds removes much of
that variance from the delivered model. The ensemble answers `model(**inputs).logits` like any
classifier here, with logits whose sigmoid (multi-label) or softmax (multi-class) is exactly the
members' mean probability, so prediction, thresholds, int8 quantisation, ONNX export and
distillation (the ensemble as teacher) treat it as one model.

On disk: `ensemble.json` (task, member count) and one `member-K/` folder per member, each saved
by the member's own `save_pretrained`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from trainers.config import Task

ENSEMBLE_FILE = "ensemble.json"
MEMBER_DIR = "member-{}"
_EPS = 1e-6  # keeps the logit of a mean probability finite in float32


class SeedEnsemble(nn.Module):
    def __init__(self, members: list[nn.Module], task: Task) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)
        self.task = task

    def forward(self, **inputs) -> SequenceClassifierOutput:
        logits = torch.stack([m(**inputs).logits.float() for m in self.members])
        if self.task == "multi_label":
            p = torch.sigmoid(logits).mean(dim=0).clamp(_EPS, 1 - _EPS)
            return SequenceClassifierOutput(logits=torch.log(p) - torch.log(1 - p))
        p = torch.softmax(logits, dim=-1).mean(dim=0).clamp_min(_EPS)
        return SequenceClassifierOutput(logits=torch.log(p))

    def get_input_embeddings(self) -> nn.Module:
        return self.members[0].get_input_embeddings()

    def save_pretrained(self, directory: str | Path) -> None:
        directory = Path(directory)
        for k, member in enumerate(self.members):
            member.save_pretrained(member_dir(directory, k))
        self.write_card(directory)

    def write_card(self, directory: Path) -> None:
        (Path(directory) / ENSEMBLE_FILE).write_text(
            json.dumps({"task": self.task, "members": len(self.members)}, indent=2)
        )

    @classmethod
    def from_card(cls, directory: str | Path, member: Callable[[int], nn.Module]) -> SeedEnsemble:
        """The ensemble `directory`'s ensemble.json describes, member K built by `member(K)`
        (its saved weights: `member_dir`; or an empty skeleton)."""
        card = _read_card(Path(directory))
        return cls([member(k) for k in range(card["members"])], card["task"]).eval()


def member_dir(directory: str | Path, k: int) -> Path:
    return Path(directory) / MEMBER_DIR.format(k)


def _read_card(directory: Path) -> dict:
    card = json.loads((directory / ENSEMBLE_FILE).read_text())
    if (
        not isinstance(card, dict)
        or card.get("task") not in ("multi_label", "multi_class")
        or not isinstance(card.get("members"), int)
        or card["members"] < 2
    ):
        raise ValueError(
            f"{directory / ENSEMBLE_FILE}: expected task and a member count of at least 2, got {card}"
        )
    return card


def is_ensemble(directory: str | Path) -> bool:
    return (Path(directory) / ENSEMBLE_FILE).is_file()


def members_of(model: nn.Module) -> list[nn.Module]:
    """An ensemble's members, or the model itself: for code that needs one transformer's shape."""
    return list(model.members) if isinstance(model, SeedEnsemble) else [model]
