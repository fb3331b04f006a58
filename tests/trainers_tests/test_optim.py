"""AdamW parameter groups of the plain transformers classifiers and of the fusion model."""

import numpy as np
import pytest
import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DistilBertConfig,
    RobertaConfig,
)

from trainers.config import Hyperparams, ModelConfig
from trainers.fusion import FusionClassifier, build_model
from trainers.optim import build_optimizer, parameter_groups

LR, HEAD, DECAY, WD = 1e-4, 10.0, 0.5, 0.01
HYPER = Hyperparams(
    learning_rate=LR, head_lr_multiplier=HEAD, layer_lr_decay=DECAY, weight_decay=WD
)
SIZES = dict(vocab_size=1000, num_hidden_layers=2, num_attention_heads=2)


def tiny(config) -> nn.Module:
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


def bert() -> nn.Module:
    return tiny(BertConfig(hidden_size=32, intermediate_size=64, num_labels=3, **SIZES))


def roberta() -> nn.Module:
    return tiny(RobertaConfig(hidden_size=32, intermediate_size=64, num_labels=3, **SIZES))


def distilbert() -> nn.Module:
    return tiny(
        DistilBertConfig(
            vocab_size=1000, dim=32, hidden_dim=64, n_layers=2, n_heads=2, num_labels=3
        )
    )


def fusion() -> nn.Module:
    """The trainer's text + hand-made-features model (trainers.fusion), as a study builds it."""
    torch.manual_seed(0)
    hyper = Hyperparams(features=True, pooling="mean", text_projection_dim=16, feature_dim=8)
    config = ModelConfig(
        from_config={"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, **SIZES}
    )
    model = build_model(
        config,
        "multi_class",
        ("a", "b", "c"),
        np.array([0, 1, 2]),
        hyper,
        num_features=8,
        pad_token_id=0,
    )
    assert isinstance(model, FusionClassifier)
    return model


def settings(model: nn.Module, hyper: Hyperparams = HYPER) -> dict[str, tuple[float, float]]:
    """(lr, weight_decay) of every parameter, by name, as the optimizer will see it."""
    by_id = {
        id(p): (g["lr"], g["weight_decay"])
        for g in parameter_groups(model, hyper)
        for p in g["params"]
    }
    return {name: by_id[id(p)] for name, p in model.named_parameters() if id(p) in by_id}


def test_bert_head_multiplier_and_layer_decay():
    s = settings(bert())
    assert s["classifier.weight"] == (LR * HEAD, WD)
    assert s["classifier.bias"] == (LR * HEAD, 0.0)
    assert s["bert.pooler.dense.weight"] == (LR * HEAD, WD)
    assert s["bert.encoder.layer.1.attention.self.query.weight"] == (LR * DECAY, WD)
    assert s["bert.encoder.layer.1.output.dense.weight"] == (LR * DECAY, WD)
    assert s["bert.encoder.layer.0.attention.self.query.weight"] == (LR * DECAY**2, WD)
    assert s["bert.embeddings.word_embeddings.weight"] == (LR * DECAY**3, WD)
    assert s["bert.embeddings.position_embeddings.weight"] == (LR * DECAY**3, WD)


def test_roberta_head_multiplier_and_layer_decay():
    s = settings(roberta())
    assert s["classifier.dense.weight"] == (LR * HEAD, WD)
    assert s["classifier.out_proj.weight"] == (LR * HEAD, WD)
    assert s["roberta.encoder.layer.1.intermediate.dense.weight"] == (LR * DECAY, WD)
    assert s["roberta.encoder.layer.0.intermediate.dense.weight"] == (LR * DECAY**2, WD)
    assert s["roberta.embeddings.word_embeddings.weight"] == (LR * DECAY**3, WD)


def test_distilbert_head_multiplier_and_layer_decay():
    s = settings(distilbert())
    assert s["pre_classifier.weight"] == s["classifier.weight"] == (LR * HEAD, WD)
    assert s["distilbert.transformer.layer.1.ffn.lin1.weight"] == (LR * DECAY, WD)
    assert s["distilbert.transformer.layer.0.ffn.lin1.weight"] == (LR * DECAY**2, WD)
    assert s["distilbert.transformer.layer.0.sa_layer_norm.weight"] == (LR * DECAY**2, 0.0)
    assert s["distilbert.embeddings.word_embeddings.weight"] == (LR * DECAY**3, WD)


def test_fusion_model_head_is_everything_outside_the_backbone():
    model = fusion()
    s = settings(model)
    head = [name for name, _ in model.named_parameters() if not name.startswith("backbone.")]
    assert {
        "text_proj.1.weight",
        "feature_proj.0.weight",
        "head.1.weight",
        "head.4.weight",
    } <= set(head)
    for name in head:
        assert s[name] == (LR * HEAD, 0.0 if name.endswith("bias") else WD), name
    assert s["backbone.pooler.dense.weight"] == (LR * HEAD, WD)
    assert s["backbone.encoder.layer.1.output.dense.weight"] == (LR * DECAY, WD)
    assert s["backbone.encoder.layer.0.attention.output.LayerNorm.weight"] == (LR * DECAY**2, 0.0)
    assert s["backbone.embeddings.word_embeddings.weight"] == (LR * DECAY**3, WD)


@pytest.mark.parametrize("build", [bert, roberta, distilbert, fusion])
def test_no_weight_decay_on_biases_and_norms_only(build):
    model = build()
    norms = {
        f"{m}.{p}"
        for m, mod in model.named_modules()
        if isinstance(mod, nn.LayerNorm)
        for p, _ in mod.named_parameters()
    }
    for name, (_, wd) in settings(model).items():
        assert (wd == 0.0) == (name.endswith("bias") or name in norms), name


@pytest.mark.parametrize("build", [bert, roberta, distilbert, fusion])
def test_every_trainable_parameter_appears_exactly_once(build):
    model = build()
    ids = [id(p) for g in parameter_groups(model, HYPER) for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}


def test_frozen_parameters_are_skipped_and_do_not_shift_the_decay():
    model = bert()
    model.bert.embeddings.requires_grad_(False)
    model.bert.encoder.layer[0].requires_grad_(False)
    s = settings(model)
    assert not any(name.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for name in s)
    assert s["bert.encoder.layer.1.output.dense.weight"] == (LR * DECAY, WD)
    ids = [id(p) for g in parameter_groups(model, HYPER) for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters() if p.requires_grad)


def test_groups_are_few_and_named():
    groups = parameter_groups(bert(), HYPER)
    # head, layer 1, layer 0, embeddings; each with and without decay.
    assert len(groups) == 8
    assert {g["name"] for g in groups} >= {
        "head",
        "head/no_decay",
        "layer.1",
        "embeddings/no_decay",
    }
    assert len(parameter_groups(bert(), Hyperparams(learning_rate=LR))) == 1


def test_build_optimizer_keeps_the_group_lrs_and_steps():
    model = bert()
    optimizer = build_optimizer(model, HYPER, device_type="cpu")
    assert sorted(g["lr"] for g in optimizer.param_groups) == sorted(
        g["lr"] for g in parameter_groups(model, HYPER)
    )
    assert optimizer.defaults["fused"]  # one pass over each tensor: the CPU step is memory-bound
    out = model(input_ids=torch.tensor([[1, 2, 3]])).logits.sum()
    out.backward()
    before = model.classifier.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.classifier.weight)
