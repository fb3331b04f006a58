"""Token cache, length-grouped batches, padding, and evaluation order (trainers.batching)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from testing.data import UCC_LABELS
from testing.specs import tiny_train_config
from trainers.batching import (
    TokenizedSplit,
    collate,
    length_grouped_batches,
    sorted_batches,
    tokenize_cached,
)
from trainers.config import DataConfig, ModelConfig
from trainers.model import load_tokenizer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(ModelConfig())


def test_length_grouped_batches_cover_every_index_once_and_differ_across_seeds():
    lengths = np.random.default_rng(0).integers(3, 120, size=1003)
    first = length_grouped_batches(lengths, 32, np.random.default_rng(1), group=4)
    second = length_grouped_batches(lengths, 32, np.random.default_rng(2), group=4)
    for batches in (first, second):
        assert sorted(np.concatenate(batches).tolist()) == list(range(1003))
        assert max(len(b) for b in batches) == 32
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    # Grouping is the point: far less padding than random batches of the same size.
    first = length_grouped_batches(lengths, 32, np.random.default_rng(1))

    def padding(batches):
        return sum(len(b) * lengths[b].max() - lengths[b].sum() for b in batches) / sum(
            len(b) * lengths[b].max() for b in batches
        )

    shuffled = np.random.default_rng(1).permutation(1003)
    assert padding(first) < padding([shuffled[i : i + 32] for i in range(0, 1003, 32)]) / 3


def test_length_grouped_batches_keep_repeated_indices_of_oversampling():
    indices = np.array([0, 0, 0, 5, 7, 7])
    batches = length_grouped_batches(np.arange(10), 4, np.random.default_rng(0), indices)
    assert sorted(np.concatenate(batches).tolist()) == [0, 0, 0, 5, 7, 7]


def test_collate_pads_to_a_multiple_of_8_with_a_matching_mask():
    ids = [np.arange(1, 4), np.arange(1, 12), np.arange(1, 2)]
    input_ids, mask = collate(ids, pad_id=0, multiple=8)
    assert input_ids.shape == mask.shape == (3, 16)
    assert mask.sum(dim=1).tolist() == [3, 11, 1]
    assert input_ids[1, :11].tolist() == list(range(1, 12)) and input_ids[1, 11:].eq(0).all()
    assert collate(ids, pad_id=0, multiple=1)[0].shape == (3, 11)
    assert collate([np.arange(16)], pad_id=0)[0].shape == (1, 16)


def test_batches_pad_to_the_longest_member_on_cpu():
    split = TokenizedSplit(
        ids=[np.arange(1, n + 1) for n in (5, 9, 2)],
        labels=np.zeros((3, 1)),
        texts=["a", "b", "c"],
    )
    [(rows, inputs)] = list(split.batches([np.array([0, 2])], pad_id=0, device=CPU))
    assert rows.tolist() == [0, 2] and inputs["input_ids"].shape == (2, 5)


def test_sorted_batches_restore_the_row_order():
    lengths = np.array([7, 3, 9, 3, 1, 12, 5])
    batches = sorted_batches(lengths, 3)
    assert [lengths[b].tolist() for b in batches] == [[1, 3, 3], [5, 7, 9], [12]]
    values = np.concatenate([lengths[b] * 10 for b in batches])  # per-row results in batch order
    out = np.empty(len(lengths), dtype=np.int64)
    out[np.concatenate(batches)] = values
    assert out.tolist() == (lengths * 10).tolist()


def test_predict_probs_returns_rows_in_split_order(tmp_path, real_data):
    """Evaluation runs in length order; each row's probabilities must still land on its own row."""
    from trainers.loop import predict_probs, prepare

    ucc = real_data.slice(tmp_path, "ucc", {"train": 40, "val": 37}) / "ucc"
    data = DataConfig(
        train_path=ucc / "train.csv",
        val_path=ucc / "val.csv",
        text_column="comment",
        label_columns=UCC_LABELS,
        cache_dir=tmp_path / "cache",
    )
    config = tiny_train_config(
        data, max_length=64, device="cpu", eval_batch_size=8, precision="fp32"
    )
    run = prepare(config)
    assert len(set(run.val.lengths.tolist())) > 5  # lengths vary, so sorting reorders rows
    probs, loss, _ = predict_probs(run, run.val)
    with torch.no_grad():
        one_by_one = [
            torch.sigmoid(run.model(input_ids=torch.as_tensor(x[None], dtype=torch.long)).logits)[
                0
            ].numpy()
            for x in run.val.ids
        ]
    np.testing.assert_allclose(probs, np.stack(one_by_one), atol=1e-5)
    assert np.isfinite(loss)


def test_token_cache_hit_returns_identical_ids_and_a_changed_text_misses(tmp_path, tokenizer):
    texts = ["You are wrong.", "What a thoughtful reply, thanks!", "ok"]
    first = tokenize_cached(texts, tokenizer, 64, tmp_path)
    assert first[1].tolist() == tokenizer(texts[1], truncation=True, max_length=64)["input_ids"]
    again = tokenize_cached(texts, tokenizer, 64, tmp_path)
    assert len(again) == 3 and all(
        np.array_equal(a, b) for a, b in zip(first, again, strict=False)
    )
    [cache_file] = tmp_path.iterdir()
    with np.load(cache_file) as cached:
        ids, offsets = cached["ids"], cached["offsets"]
    np.savez(cache_file, ids=ids + 1, offsets=offsets)  # poisoned: a hit must return these
    assert tokenize_cached(texts, tokenizer, 64, tmp_path)[1].tolist() == (first[1] + 1).tolist()

    changed = tokenize_cached(
        [texts[0], "What a thoughtless reply.", texts[2]], tokenizer, 64, tmp_path
    )
    assert len(list(tmp_path.iterdir())) == 2  # a miss: tokenised afresh, not the poisoned entry
    assert (
        changed[1].tolist()
        == tokenizer("What a thoughtless reply.", truncation=True, max_length=64)["input_ids"]
    )
    assert np.array_equal(changed[0], first[0])
    tokenize_cached(texts, tokenizer, 32, tmp_path)
    assert len(list(tmp_path.iterdir())) == 3  # the max length is part of the key too
