"""The student learns from its teacher: the distillation loss and its gradients change with the
teacher's logits, validation gets the task loss alone, and a student trained on one teacher ends
up with other weights than one trained on another teacher from the same start."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainers.distill import DistillationLoss, pack_targets


def bce(logits, targets):
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float())


def cross_entropy(logits, targets):
    return F.cross_entropy(logits.float(), targets)


def loss_and_grad(
    loss: DistillationLoss, logits: torch.Tensor, targets: np.ndarray
) -> tuple[float, torch.Tensor]:
    student = logits.clone().requires_grad_(True)
    value = loss(student, torch.as_tensor(targets))
    value.backward()
    return float(value.detach()), student.grad


@pytest.mark.parametrize("task", ["multi_label", "multi_class"])
def test_the_teacher_changes_the_loss_and_its_gradients(task):
    rng = np.random.default_rng(0)
    student = torch.as_tensor(rng.standard_normal((6, 4)), dtype=torch.float32)
    labels = (
        rng.integers(0, 2, (6, 4)).astype(np.float32)
        if task == "multi_label"
        else rng.integers(0, 4, 6)
    )
    hard = bce if task == "multi_label" else cross_entropy
    teacher_a, teacher_b = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    loss = DistillationLoss(task, hard, 4, temperature=2.0, alpha=0.5)
    value_a, grad_a = loss_and_grad(loss, student, pack_targets(labels, teacher_a))
    value_b, grad_b = loss_and_grad(loss, student, pack_targets(labels, teacher_b))
    assert value_a != pytest.approx(value_b) and not torch.allclose(grad_a, grad_b)
    # The labels alone (alpha 0) ignore the teacher and equal the task loss.
    labels_only = DistillationLoss(task, hard, 4, temperature=2.0, alpha=0.0)
    target = torch.as_tensor(labels)
    assert loss_and_grad(labels_only, student, pack_targets(labels, teacher_a))[
        0
    ] == pytest.approx(float(hard(student, target)))
    assert loss_and_grad(labels_only, student, pack_targets(labels, teacher_b))[
        0
    ] == pytest.approx(float(hard(student, target)))


def test_matching_the_teacher_minimises_the_soft_term():
    teacher = torch.tensor([[2.0, -1.0, 0.5]])
    loss = DistillationLoss("multi_class", cross_entropy, 3, temperature=3.0, alpha=1.0)
    at_teacher = loss.soft(teacher, teacher)
    assert float(at_teacher) == pytest.approx(0.0, abs=1e-6)
    assert float(loss.soft(teacher + torch.tensor([[0.0, 1.0, 0.0]]), teacher)) > float(at_teacher)


def test_plain_labels_get_the_task_loss_so_validation_losses_compare():
    loss = DistillationLoss("multi_label", bce, 3, temperature=2.0, alpha=0.7)
    logits, labels = torch.zeros(2, 3), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert float(loss(logits, labels)) == pytest.approx(float(bce(logits, labels)))


def test_a_student_trained_on_another_teacher_learns_other_weights(tmp_path):
    """Through the real training path (student_run, trainers.loop.train_epoch): with alpha 1 the
    labels play no part, so only the teacher's logits can make the two students differ."""
    from testing.data import UCC_LABELS, slice_dataset
    from testing.specs import tiny_architecture
    from trainers.config import DataConfig, Hyperparams, ModelConfig, TrainConfig
    from trainers.distill import DistillSettings, student_run
    from trainers.fusion import build_model
    from trainers.loop import train_epoch
    from trainers.model import load_tokenizer

    data = slice_dataset(tmp_path, "ucc", {"train": 32, "val": 16})
    config = TrainConfig(
        task="multi_label",
        data=DataConfig(train_path=data / "ucc/train.csv", val_path=data / "ucc/val.csv", text_column="comment",
                        label_columns=tuple(UCC_LABELS), cache_dir=tmp_path / "cache"),
        model=ModelConfig(from_config=tiny_architecture("bert"), max_length=32),
        hyper=Hyperparams(batch_size=8, precision="fp32"),
    )  # fmt: skip
    tokenizer = load_tokenizer(config.model)
    torch.manual_seed(0)
    start = build_model(
        config.model,
        config.task,
        config.data.label_names,
        np.zeros((2, 8)),
        config.hyper,
        0,
        tokenizer.pad_token_id,
    )
    settings = DistillSettings(
        temperature=2.0, alpha=1.0, epochs=1, learning_rate=1e-3, batch_size=8
    )
    trained = []
    for seed in (1, 2):
        teacher = np.random.default_rng(seed).standard_normal((32, 8)).astype(np.float32) * 3
        run = student_run(config, copy.deepcopy(start), tokenizer, None, teacher, settings)
        train_epoch(run, run.epoch_batches(), 1)
        trained.append(run.model.classifier.weight.detach().clone())
    assert not torch.allclose(trained[0], trained[1])
