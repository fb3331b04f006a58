"""Token ids cached on disk, served in length-grouped, dynamically padded batches.

Short comments padded to 128 tokens waste most of the compute, so batches are grouped by length
and padded only to their longest member (on CUDA rounded up to a multiple of 8 for the tensor
cores; on a CPU that rounding would only add a tenth more tokens to compute).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from trainers.progress import chunks, progress

TOKENIZE_CHUNK = 1024  # texts per tokenizer call: the steps of the progress bar

# --- tokenisation, cached on disk across the trials of a study ---------------------------------


def tokenize_cached(
    texts: list[str], tokenizer, max_length: int, cache_dir: Path
) -> list[np.ndarray]:
    """Token ids per text. Keyed by tokenizer, max length and the texts, so every trial of a
    study (and every worker) reuses the first one's work."""
    key = _cache_key(texts, tokenizer, max_length)
    path = Path(cache_dir) / f"tokens-{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return np.split(cached["ids"], cached["offsets"][1:-1])
    ids = []
    for part in progress(
        chunks(len(texts), TOKENIZE_CHUNK),
        "tokenising",
        total=-(-len(texts) // TOKENIZE_CHUNK),
        unit="chunk",
    ):
        encoded = tokenizer(
            texts[part], truncation=True, max_length=max_length, add_special_tokens=True
        )["input_ids"]
        ids += [np.asarray(x, dtype=np.int32) for x in encoded]
    offsets = np.cumsum([0, *map(len, ids)])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, ids=np.concatenate(ids), offsets=offsets)
    tmp.replace(path)  # atomic: parallel workers never read a half-written cache
    return ids


def _cache_key(texts: list[str], tokenizer, max_length: int) -> str:
    h = hashlib.sha256()
    h.update(_tokenizer_fingerprint(tokenizer).encode())
    h.update(f"|{type(tokenizer).__name__}|{max_length}|".encode())
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:24]


def _tokenizer_fingerprint(tokenizer) -> str:
    """Vocabulary and rules, without the truncation and padding state that every call rewrites
    (else the key would change after the first call in a process)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return repr(sorted(tokenizer.get_vocab().items()))
    state = json.loads(backend.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    return json.dumps(state, sort_keys=True)


# --- batching --------------------------------------------------------------------------------


def length_grouped_batches(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    indices: np.ndarray | None = None,
    group: int = 50,
) -> list[np.ndarray]:
    """Random batches of similar length: shuffle, sort within chunks of `group` batches, then
    shuffle the batches. Training stays random while padding nearly vanishes."""
    order = rng.permutation(len(lengths)) if indices is None else rng.permutation(indices)
    chunk = batch_size * group
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Evaluation batches in length order (predictions are put back in place by index)."""
    order = np.argsort(lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


LENGTH_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512)


def pad_width(longest: int, multiple: int, buckets: tuple[int, ...] | None = None) -> int:
    """The padded width of a batch: its longest row rounded up to `multiple`, or to the next of
    `buckets`, so a compiled model sees a few shapes (CUDA graphs replayed, not re-recorded)."""
    if buckets:
        return next((b for b in buckets if b >= longest), -(-longest // multiple) * multiple)
    return -(-longest // multiple) * multiple


def collate(
    ids: list[np.ndarray], pad_id: int, multiple: int = 8, buckets: tuple[int, ...] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    width = pad_width(max(len(x) for x in ids), multiple, buckets)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    return torch.from_numpy(input_ids), torch.from_numpy(mask)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Through pinned memory on CUDA, so the copy is asynchronous and the host runs ahead."""
    if device.type != "cuda":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


@dataclass(frozen=True)
class TokenizedSplit:
    ids: list[np.ndarray]
    labels: np.ndarray
    texts: list[str]
    features: np.ndarray | None = None  # hand-made features, float32 (n, F), fed as `features`
    soft_targets: np.ndarray | None = None  # what training aims at instead of `labels`, when set

    @property
    def targets(self) -> np.ndarray:
        return self.labels if self.soft_targets is None else self.soft_targets

    @cached_property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.ids), dtype=np.int64, count=len(self.ids))

    def batches(
        self,
        order: list[np.ndarray],
        pad_id: int,
        device: torch.device,
        buckets: tuple[int, ...] | None = None,
    ) -> Iterator[tuple[np.ndarray, dict]]:
        """Yield (row indices, model inputs on `device`). Pinned memory lets the copy overlap."""
        multiple = 8 if device.type == "cuda" else 1
        for rows in order:
            input_ids, mask = collate([self.ids[i] for i in rows], pad_id, multiple, buckets)
            tensors = {"input_ids": input_ids, "attention_mask": mask}
            if self.features is not None:
                tensors["features"] = torch.from_numpy(self.features[rows])
            yield rows, {k: to_device(t, device) for k, t in tensors.items()}
