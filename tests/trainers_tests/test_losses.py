import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.config import Hyperparams
from trainers.losses import (
    asymmetric_loss,
    build_loss,
    class_weights,
    focal_loss,
    positive_weights,
)

# Prevalences 2/4, 1/4, 0/4: ratios (1 - p) / p = 1, 3, inf.
LABELS = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float32)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 3, generator=gen) * 4
    targets = (torch.rand(16, 3, generator=gen) > 0.7).float()
    return logits, targets


def test_focal_with_gamma_zero_is_bce(batch):
    logits, targets = batch
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    torch.testing.assert_close(focal_loss(logits, targets, gamma=0.0), bce)


def test_asl_with_zero_gammas_and_no_clip_is_bce(batch):
    logits, targets = batch
    asl = asymmetric_loss(logits, targets, gamma_pos=0.0, gamma_neg=0.0, clip=0.0)
    torch.testing.assert_close(asl, F.binary_cross_entropy_with_logits(logits, targets))


def test_pos_weight_applies_to_every_multi_label_loss_like_bce(batch):
    logits, targets = batch
    pw = torch.tensor([1.0, 3.0, 10.0])
    bce = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pw)
    torch.testing.assert_close(focal_loss(logits, targets, gamma=0.0, pos_weight=pw), bce)
    torch.testing.assert_close(asymmetric_loss(logits, targets, 0.0, 0.0, 0.0, pos_weight=pw), bce)


def test_focal_down_weights_easy_examples():
    easy_logits, targets = torch.tensor([[4.0, -4.0]]), torch.tensor([[1.0, 0.0]])
    bce = F.binary_cross_entropy_with_logits(easy_logits, targets)
    focal = focal_loss(easy_logits, targets, gamma=2.0)
    assert focal < bce / 100  # (1 - p)^2 with p = sigmoid(4) ≈ 0.982
    hard_logits = torch.tensor([[-4.0, 4.0]])
    assert focal_loss(hard_logits, targets, gamma=2.0) > 0.9 * F.binary_cross_entropy_with_logits(
        hard_logits, targets
    )


def test_focal_alpha_weights_positives_and_negatives():
    logits, targets = torch.tensor([[0.3, -0.2]]), torch.tensor([[1.0, 0.0]])
    per_element = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    expected = (per_element * torch.tensor([[0.25, 0.75]])).mean()
    torch.testing.assert_close(focal_loss(logits, targets, gamma=0.0, alpha=0.25), expected)


def test_asl_clip_zeroes_easy_negatives_and_matches_the_formula():
    logits, targets = torch.tensor([[-3.0, 1.0, 2.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    p = torch.sigmoid(logits)
    p_m = (p - 0.05).clamp(min=0)
    neg = p_m**4 * torch.log(1 - p_m)
    pos = (1 - p) ** 1 * torch.log(p)
    expected = -(targets * pos + (1 - targets) * neg).mean()
    loss = asymmetric_loss(logits, targets, gamma_pos=1.0, gamma_neg=4.0, clip=0.05)
    torch.testing.assert_close(loss, expected)
    assert p[0, 0] < 0.05  # the first negative is easy: it contributes exactly nothing
    only_easy = asymmetric_loss(logits[:, :1], targets[:, :1], 1.0, 4.0, 0.05)
    assert only_easy == 0


def test_losses_are_finite_with_saturated_logits_and_fractional_gamma():
    logits = torch.tensor([[200.0, -200.0, 200.0, -200.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    for loss in (
        focal_loss(logits, targets, gamma=0.5),
        asymmetric_loss(logits, targets, 0.5, 0.5, 0.05),
    ):
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


def test_bf16_logits_are_computed_in_float32(batch):
    logits, targets = batch
    loss = build_loss("multi_label", Hyperparams(loss="focal"), LABELS)(logits.bfloat16(), targets)
    assert loss.dtype == torch.float32


def test_positive_weights_match_train_prevalence():
    torch.testing.assert_close(
        positive_weights(LABELS, power=1.0, cap=50.0), torch.tensor([1.0, 3.0, 50.0])
    )
    torch.testing.assert_close(
        positive_weights(LABELS, power=0.5, cap=50.0), torch.tensor([1.0, 3**0.5, 50.0])
    )
    torch.testing.assert_close(
        positive_weights(LABELS, power=1.0, cap=2.0), torch.tensor([1.0, 2.0, 2.0])
    )
    torch.testing.assert_close(positive_weights(LABELS, power=0.0, cap=50.0), torch.ones(3))


def test_build_loss_uses_pos_weight_from_train_labels(batch):
    logits, targets = batch
    loss = build_loss(
        "multi_label", Hyperparams(pos_weight_power=1.0, pos_weight_cap=10.0), LABELS
    )
    expected = F.binary_cross_entropy_with_logits(
        logits, targets, pos_weight=torch.tensor([1.0, 3.0, 10.0])
    )
    torch.testing.assert_close(loss(logits, targets), expected)


def test_cross_entropy_with_label_smoothing_is_torchs():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([0, 1, 2, 3, 0, 0, 1, 2])
    loss = build_loss("multi_class", Hyperparams(label_smoothing=0.1), np.array([0, 0, 1, 2, 3]))
    torch.testing.assert_close(
        loss(logits, targets), F.cross_entropy(logits, targets, label_smoothing=0.1)
    )


def test_class_weights_from_frequencies():
    ids = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 2])  # counts 6, 2, 4 of n = 12, K = 3
    torch.testing.assert_close(
        class_weights(ids, power=1.0), torch.tensor([12 / 18, 12 / 6, 12 / 12])
    )
    torch.testing.assert_close(
        class_weights(ids, power=0.5), torch.tensor([12 / 18, 12 / 6, 12 / 12]) ** 0.5
    )
    torch.testing.assert_close(class_weights(ids, power=0.0), torch.ones(3))
    # A class missing from train counts as one example.
    expected = torch.tensor([12 / 24, 12 / 8, 12 / 16, 12 / 4])
    torch.testing.assert_close(class_weights(ids, power=1.0, num_classes=4), expected)


def test_build_loss_multi_class_applies_class_weights():
    ids = np.array([0, 0, 0, 1])
    logits, targets = (
        torch.randn(5, 2, generator=torch.Generator().manual_seed(2)),
        torch.tensor([0, 1, 1, 0, 1]),
    )
    loss = build_loss("multi_class", Hyperparams(class_weight_power=1.0, label_smoothing=0.2), ids)
    expected = F.cross_entropy(
        logits, targets, weight=torch.tensor([4 / 6, 4 / 2]), label_smoothing=0.2
    )
    torch.testing.assert_close(loss(logits, targets), expected)


@pytest.mark.parametrize(
    "task, loss, labels",
    [
        ("multi_label", "cross_entropy", LABELS),
        ("multi_class", "focal", np.array([0, 1])),
        ("multi_class", "bce", np.array([0, 1])),
    ],
)
def test_build_loss_rejects_a_loss_of_the_other_task(task, loss, labels):
    with pytest.raises(ValueError, match=f"loss '{loss}' is not a {task.replace('_', '-')} loss"):
        build_loss(task, Hyperparams(loss=loss), labels)


def test_build_loss_rejects_unknown_task_and_wrong_label_shapes():
    with pytest.raises(ValueError, match="unknown task"):
        build_loss("regression", Hyperparams(), LABELS)
    with pytest.raises(ValueError, match=r"\(n, L\)"):
        build_loss("multi_label", Hyperparams(), np.array([0, 1]))
    with pytest.raises(ValueError, match="integer class ids"):
        build_loss("multi_class", Hyperparams(), LABELS)
