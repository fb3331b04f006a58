"""A logistic regression over a frozen sentence encoder's embedding, blended with the
fine-tuned transformer.

A sentence encoder trained on a billion sentence pairs (all-mpnet-base-v2) places comments by
meaning in a way that 3,575 training comments cannot teach a fine-tuned MiniLM: on UCC val a
regression over its embedding scores macro ROC-AUC 0.731 alone, below the fine-tuned ensemble's
0.776, yet mixed into that ensemble and the n-gram model it adds +0.008 on held-out halves of
val. The same regression over MiniLM's own sentence embedding adds nothing: it sees what the
fine-tuned MiniLM already sees.

The text's embedding is the encoder's mean-pooled last layer at unit length (how
sentence-transformers pools these models). The encoder is not copied into the model folder (it
is ~440 MB): `embeddings.json` names it (`packaged:all-mpnet-base-v2`, a folder or a hub name)
with the SHA-256 of its parameters, checked every time it is loaded, and
`embeddings.safetensors` holds the regression's coefficients and intercepts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from trainers.checkpoint import EMBEDDINGS_FILE
from trainers.config import ModelConfig, Task
from trainers.errors import TrainerError
from trainers.linear import LinearHead, read_side_model

WEIGHTS_FILE = "embeddings.safetensors"
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)  # UCC's labels chose 0.03-0.1 with all-mpnet-base-v2
BATCH_SIZE = 64


class EmbeddingsCard(BaseModel):
    """embeddings.json: the encoder, how a text is embedded, and the regression's shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task
    weight: float
    n_outputs: int
    encoder: str
    encoder_sha256: str
    max_length: int
    dim: int


@dataclass
class SentenceEncoder:
    """A frozen pretrained transformer and its tokenizer, on the best available device."""

    name: str
    tokenizer: object
    model: torch.nn.Module
    max_length: int
    sha256: str

    @classmethod
    def load(cls, name: str, max_length: int) -> SentenceEncoder:
        from trainers.loop import pick_device
        from trainers.model import load_encoder, load_tokenizer, position_limit

        tokenizer = load_tokenizer(ModelConfig(name_or_path=name))
        model = load_encoder(name)
        limit = position_limit(model.config)
        digest = parameters_sha256(model)
        model = model.to(pick_device("auto"))
        return cls(name, tokenizer, model, min(max_length, limit or max_length), digest)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32: each text's mean token embedding at unit length."""
        texts = list(texts)
        device = next(self.model.parameters()).device
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")  # less padding per batch
        for start in range(0, len(texts), BATCH_SIZE):
            rows = order[start : start + BATCH_SIZE]
            batch = self.tokenizer(
                [texts[r] for r in rows], padding=True, truncation=True,
                max_length=self.max_length, return_tensors="pt",
            ).to(device)  # fmt: skip
            hidden = self.model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out[rows] = torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()
        return out


def parameters_sha256(model: torch.nn.Module) -> str:
    """A digest of the encoder's parameters (names, shapes and bytes), whatever files held
    them; buffers are left out, as transformers versions differ in which ones they keep."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.named_parameters()):
        data = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class EmbeddingModel:
    """A sentence encoder and a logistic-regression head over its embedding."""

    encoder: SentenceEncoder
    head: LinearHead

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        labels: np.ndarray,
        task: Task,
        encoder: SentenceEncoder,
        seed: int = 0,
    ) -> EmbeddingModel:
        """`labels`: (n, labels) 0/1 for multi-label, (n,) class ids for multi-class."""
        return cls(encoder, LinearHead.fit(encoder.embed(texts), labels, task, C_GRID, seed))

    @property
    def task(self) -> Task:
        return self.head.task

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return self.head.probabilities(self.encoder.embed(texts))

    def save(self, directory: str | Path, weight: float) -> None:
        e = self.encoder
        card = EmbeddingsCard(
            task=self.task,
            weight=weight,
            n_outputs=self.head.n_outputs,
            encoder=e.name,
            encoder_sha256=e.sha256,
            max_length=e.max_length,
            dim=e.dim,
        )
        (Path(directory) / EMBEDDINGS_FILE).write_text(card.model_dump_json())
        self.head.save(Path(directory) / WEIGHTS_FILE)

    @classmethod
    def load(
        cls, directory: str | Path, shown_as: str | Path | None = None
    ) -> tuple[EmbeddingModel, float]:
        """The side model and its weight in the mix; the encoder it names must be the one it
        was fitted with (same parameters), or loading stops with one line."""
        directory = Path(directory)
        shown = Path(shown_as or directory)
        card, head = read_side_model(directory, EMBEDDINGS_FILE, WEIGHTS_FILE, EmbeddingsCard, "embedding", shown)  # fmt: skip
        head.check_fits(card.dim, card.n_outputs, shown / WEIGHTS_FILE, EMBEDDINGS_FILE)
        try:
            encoder = SentenceEncoder.load(card.encoder, card.max_length)
        except TrainerError as e:
            raise TrainerError(f"{shown / EMBEDDINGS_FILE}: its encoder: {e}") from None
        if encoder.sha256 != card.encoder_sha256:
            raise TrainerError(
                f"{shown / EMBEDDINGS_FILE}: encoder {card.encoder!r} is not the one the blend was fitted with (parameters sha256 {encoder.sha256[:12]}…, expected {card.encoder_sha256[:12]}…); install that encoder or retrain the model"
            )
        return cls(encoder, head), card.weight
