import numpy as np
import pytest

from trainers.sampling import oversampling_weights, weighted_epoch_indices

# Label prevalences 4/8, 2/8, 1/8: rarities 1/4, 1/2, 1.
LABELS = np.array(
    [
        [1, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [1, 0, 1],
        [0, 1, 0],
        [0, 0, 0],
        [0, 0, 0],
        [0, 0, 0],
    ]
)


def test_strength_zero_gives_all_ones():
    np.testing.assert_array_equal(oversampling_weights(LABELS, 0.0), np.ones(8))
    np.testing.assert_array_equal(oversampling_weights(np.array([0, 0, 1, 2]), 0.0), np.ones(4))


def test_weight_follows_the_rarest_positive_label():
    weights = oversampling_weights(LABELS, 4.0)
    np.testing.assert_allclose(weights, [2, 2, 3, 5, 3, 1, 1, 1])
    assert weights.argmax() == 3  # the only row with the rarest label


def test_multi_class_rarity_by_class_frequency():
    ids = np.array([0, 0, 0, 0, 1, 1, 2])
    np.testing.assert_allclose(oversampling_weights(ids, 2.0), [1.5, 1.5, 1.5, 1.5, 2, 2, 3])


def test_no_positive_labels_at_all_gives_ones():
    np.testing.assert_array_equal(oversampling_weights(np.zeros((3, 2)), 5.0), np.ones(3))


def test_rejects_labels_of_other_shapes():
    with pytest.raises(ValueError, match="shape"):
        oversampling_weights(np.zeros((2, 2, 2)), 1.0)


def test_epoch_indices_have_the_epoch_length_and_over_represent_rare_rows():
    labels = np.zeros((1000, 2))
    labels[:10, 1] = 1  # 1% rare rows
    labels[10:500, 0] = 1
    weights = oversampling_weights(labels, 9.0)
    indices = weighted_epoch_indices(weights, np.random.default_rng(0))
    assert indices.shape == (1000,) and indices.min() >= 0 and indices.max() < 1000
    rare_share = np.isin(indices, np.arange(10)).mean()
    # Each rare row weighs 10 against ~1: about 9% of draws, against 1% without over-sampling.
    assert 0.06 < rare_share < 0.13
    plain = weighted_epoch_indices(np.ones(1000), np.random.default_rng(0))
    assert np.isin(plain, np.arange(10)).mean() < 0.03


def test_epoch_indices_are_reproducible_from_the_generator():
    weights = oversampling_weights(LABELS, 3.0)
    first = weighted_epoch_indices(weights, np.random.default_rng(7))
    np.testing.assert_array_equal(first, weighted_epoch_indices(weights, np.random.default_rng(7)))
