"""Vocabulary pruning: drop the word-embedding rows of WordPiece tokens a training split never
uses, and the same tokens from the tokenizer.

The word embeddings are half of MiniLM's weights (30,522 × 384) and UCC's train split uses
about 9,000 of those tokens. Every single character and `##` continuation character stays, so the
smaller vocabulary still spells any word: a test word whose whole-word token was dropped is
split into kept pieces (never [UNK] where the full vocabulary had none), and train texts are
tokenised exactly as before, so the fine-tuned model sees the same input it learnt from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainers.errors import TrainerError

TOKENIZER_JSON = "tokenizer.json"


def kept_token_ids(
    tokenizer_dir: Path, texts: Sequence[str], max_length: int, min_count: int = 1
) -> np.ndarray:
    """Original ids to keep, ascending: tokens used at least `min_count` times in `texts`, every
    special and added token, and every single (continuation) character."""
    from tokenizers import Tokenizer

    raw = _read_tokenizer(tokenizer_dir)
    tokenizer = Tokenizer.from_str(json.dumps(raw))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    counts = np.bincount(
        np.concatenate([e.ids for e in tokenizer.encode_batch(list(texts))]),
        minlength=len(raw["model"]["vocab"]),
    )
    keep = set(np.flatnonzero(counts >= min_count).tolist())
    keep |= {a["id"] for a in raw.get("added_tokens", [])}
    keep |= {
        i
        for token, i in raw["model"]["vocab"].items()
        if len(token) == 1 or (token.startswith("##") and len(token) == 3)
    }
    return np.array(sorted(keep), dtype=np.int64)


def write_pruned_tokenizer(source: Path, target: Path, kept: np.ndarray) -> None:
    """Rewrite tokenizer.json (and vocab.txt, tokenizer_config.json) of `source` into `target`
    with only the kept tokens, renumbered in their original order."""
    raw = _read_tokenizer(source)
    new_id = {int(old): new for new, old in enumerate(kept)}
    raw["model"]["vocab"] = {
        t: new_id[i]
        for t, i in sorted(raw["model"]["vocab"].items(), key=lambda kv: kv[1])
        if i in new_id
    }
    for token in raw.get("added_tokens", []):
        token["id"] = new_id[token["id"]]
    _renumber_post_processor(raw.get("post_processor"), new_id)
    (target / TOKENIZER_JSON).write_text(json.dumps(raw, ensure_ascii=False))
    if (source / "vocab.txt").is_file():
        (target / "vocab.txt").write_text(
            "".join(f"{t}\n" for t in raw["model"]["vocab"]), encoding="utf-8"
        )
    config = source / "tokenizer_config.json"
    if config.is_file():
        values = json.loads(config.read_text())
        if "added_tokens_decoder" in values:
            values["added_tokens_decoder"] = {
                str(new_id[int(k)]): v for k, v in values["added_tokens_decoder"].items()
            }
        (target / config.name).write_text(json.dumps(values, indent=2, ensure_ascii=False))
    for name in ("special_tokens_map.json",):
        if (source / name).is_file():
            (target / name).write_bytes((source / name).read_bytes())


@torch.no_grad()
def prune_embeddings(embeddings: nn.Embedding, kept: np.ndarray) -> nn.Embedding:
    """The embedding rows of the kept ids, in the new numbering."""
    index = torch.as_tensor(kept, device=embeddings.weight.device)
    padding = embeddings.padding_idx
    new_padding = (
        int(np.searchsorted(kept, padding)) if padding is not None and padding in kept else None
    )
    smaller = nn.Embedding(
        len(kept),
        embeddings.embedding_dim,
        padding_idx=new_padding,
        device=index.device,
        dtype=embeddings.weight.dtype,
    )
    smaller.weight.copy_(embeddings.weight.index_select(0, index))
    return smaller


def prune_vocabulary(model: nn.Module, kept: np.ndarray) -> None:
    """Replace the model's word embeddings by the kept rows and record the new vocabulary size."""
    from trainers.shrink import backbone

    inner = backbone(model)
    inner.set_input_embeddings(prune_embeddings(inner.get_input_embeddings(), kept))
    inner.config.vocab_size = len(kept)
    if getattr(inner.config, "pad_token_id", None) is not None:
        inner.config.pad_token_id = int(np.searchsorted(kept, inner.config.pad_token_id))


def _renumber_post_processor(processor: dict | None, new_id: dict[int, int]) -> None:
    """TemplateProcessing keeps `special_tokens.<t>.ids`, BertProcessing `cls`/`sep` as [token,
    id]; a Sequence holds either."""
    if not processor:
        return
    for special in processor.get("special_tokens", {}).values():
        special["ids"] = [new_id[i] for i in special["ids"]]
    for key in ("cls", "sep"):
        if isinstance(processor.get(key), list):
            processor[key][1] = new_id[processor[key][1]]
    for inner in processor.get("processors", []):
        _renumber_post_processor(inner, new_id)


def _read_tokenizer(directory: Path) -> dict:
    path = Path(directory) / TOKENIZER_JSON
    if not path.is_file():
        raise TrainerError(
            f"{directory}: vocabulary pruning needs a fast tokenizer's {TOKENIZER_JSON}"
        )
    raw = json.loads(path.read_text())
    if raw.get("model", {}).get("type") != "WordPiece":
        raise TrainerError(
            f"{path}: vocabulary pruning supports WordPiece tokenizers (BERT, MiniLM), not {raw.get('model', {}).get('type')}"
        )
    return raw
