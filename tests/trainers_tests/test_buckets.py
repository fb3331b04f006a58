"""Bucketed padding: a compiled model sees a few fixed widths instead of one per batch."""

from __future__ import annotations

import numpy as np

from trainers.batching import LENGTH_BUCKETS, collate, pad_width


def test_widths_round_up_to_a_multiple_or_to_the_next_bucket():
    assert pad_width(13, 8) == 16 and pad_width(17, 8) == 24 and pad_width(17, 1) == 17
    assert pad_width(17, 8, LENGTH_BUCKETS) == 32 and pad_width(100, 8, LENGTH_BUCKETS) == 128
    assert pad_width(600, 8, LENGTH_BUCKETS) == 600  # past the last bucket: the multiple again


def test_bucketed_batches_of_any_length_share_few_shapes():
    rng = np.random.default_rng(0)
    widths = {
        collate(
            [np.ones(n, dtype=np.int32) for n in rng.integers(1, 129, 8)], 0, 8, LENGTH_BUCKETS
        )[0].shape[1]
        for _ in range(200)
    }
    assert (
        widths <= set(LENGTH_BUCKETS) and len(widths) <= 3
    )  # batches of 8 random lengths: their longest is ≥ 64 almost always
    ids, mask = collate([np.array([5, 6, 7], dtype=np.int32)], 0, 8, LENGTH_BUCKETS)
    assert ids.shape == (1, 16) and ids[0, :3].tolist() == [5, 6, 7] and int(mask.sum()) == 3
