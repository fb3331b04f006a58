"""Structural compression on a tiny BERT: removing a head or a neuron is exactly zeroing it,
pruned and int8 models round-trip through data-only files, the importance sees a dead head,
and a vocabulary cut to train's tokens tokenises train exactly as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from testing.specs import tiny_architecture
from trainers.batching import TokenizedSplit
from trainers.model import resolve_model_path
from trainers.quantize import INT8_FILE, load_int8, quantize_int8, save_int8
from trainers.shrink import (
    EncoderShape,
    apply_shape,
    encoder_layers,
    encoder_shape,
    every_other_layer,
    keep_layers,
    parameter_count,
    prune_heads,
    prune_neurons,
)
from trainers.skeleton import empty_model, save_architecture
from trainers.vocab import kept_token_ids, prune_vocabulary, write_pruned_tokenizer

TEXTS = [
    "you are all idiots",
    "what a lovely day",
    "nobody asked for your opinion, honestly",
    "thanks, that helps a lot",
]


def tiny_model(**overrides) -> torch.nn.Module:
    values = {**tiny_architecture("bert"), **overrides}
    config = AutoConfig.for_model(values.pop("model_type"), num_labels=3, **values)
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(
        config, attn_implementation="sdpa"
    ).eval()


def inputs(n: int = 3, length: int = 9) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 1000, (n, length), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def test_removing_a_head_equals_zeroing_its_value_rows():
    model, batch = tiny_model(), inputs()
    layer = encoder_layers(model)[0]
    size = layer.attention.self.attention_head_size
    layer.attention.self.value.weight[size:] = 0  # head 1 contributes nothing through its values
    layer.attention.self.value.bias[size:] = 0
    expected = model(**batch).logits
    prune_heads(layer, [0])
    assert (
        layer.attention.self.query.out_features == size
        and layer.attention.output.dense.in_features == size
    )
    torch.testing.assert_close(model(**batch).logits, expected, atol=1e-5, rtol=0)


@torch.no_grad()
def test_removing_neurons_equals_zeroing_them_and_shrinks_the_model():
    model, batch = tiny_model(), inputs()
    layer = encoder_layers(model)[1]
    layer.intermediate.dense.weight[32:] = 0
    layer.intermediate.dense.bias[32:] = 0  # GELU(0) = 0: these neurons are dead
    expected, before = model(**batch).logits, parameter_count(model)
    prune_neurons(layer, range(32))
    torch.testing.assert_close(model(**batch).logits, expected, atol=1e-5, rtol=0)
    assert parameter_count(model) == before - 32 * (32 + 1) - 32 * 32


@torch.no_grad()
def test_a_shrunk_model_reloads_from_its_architecture_and_shape(tmp_path):
    from safetensors.torch import load_file, save_file

    model, batch = tiny_model(), inputs()
    prune_heads(encoder_layers(model)[0], [1])
    prune_neurons(encoder_layers(model)[1], range(10))
    save_architecture(model, tmp_path)
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors")
    )
    shape = EncoderShape.from_json(encoder_shape(model).as_json())
    again = empty_model(tmp_path)
    apply_shape(again, shape)
    again.load_state_dict(load_file(str(tmp_path / "w.safetensors")))
    torch.testing.assert_close(again(**batch).logits, model(**batch).logits)


def test_keep_layers_makes_a_shallower_model_the_config_describes(tmp_path):
    model = tiny_model(num_hidden_layers=4)
    keep_layers(model, every_other_layer(4))
    assert every_other_layer(4) == [1, 3] and every_other_layer(6) == [1, 3, 5]
    assert len(encoder_layers(model)) == 2 and model.config.num_hidden_layers == 2
    model.save_pretrained(tmp_path)
    assert (
        AutoModelForSequenceClassification.from_pretrained(tmp_path).config.num_hidden_layers == 2
    )


@torch.no_grad()
def test_int8_round_trips_through_safetensors_only(tmp_path):
    model, batch = tiny_model(), inputs()
    quantized = quantize_int8(model)
    save_int8(quantized, model, tmp_path)
    assert {p.suffix for p in tmp_path.rglob("*") if p.is_file()} <= {".json", ".safetensors"}
    loaded = load_int8(tmp_path)
    torch.testing.assert_close(loaded(**batch).logits, quantized(**batch).logits, atol=0, rtol=0)
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=0.05, rtol=0)
    linear_bytes = sum(
        m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    fp32_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert (
        (tmp_path / INT8_FILE).stat().st_size < fp32_bytes - 0.5 * linear_bytes
    )  # int8 Linear weights, plus a scale per channel


def test_importance_is_zero_for_a_head_that_contributes_nothing():
    from trainers.importance import measure_importance

    model = tiny_model()
    layer = encoder_layers(model)[1]
    with torch.no_grad():
        layer.attention.self.value.weight[:16] = 0
        layer.attention.self.value.bias[:16] = 0
    batch = inputs(4)
    ids = [
        row[mask.bool()].numpy()
        for row, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
    ]
    split = TokenizedSplit(ids=ids, labels=np.array([0, 1, 2, 1]), texts=["x"] * 4)
    importance = measure_importance(
        model, split, torch.nn.functional.cross_entropy, pad_id=0, batch_size=2
    )
    assert importance.heads.shape == (2, 2) and importance.neurons.shape == (2, 64)
    assert importance.heads[1, 0] == 0 and importance.heads[1, 1] > 0
    assert importance.top_heads(1, 1) == [1]
    assert all(p.grad is None for p in model.parameters())


def test_a_vocabulary_cut_to_train_tokenises_train_identically(tmp_path):
    source = tmp_path / "full"
    AutoTokenizer.from_pretrained(resolve_model_path("packaged:all-MiniLM-L6-v2")).save_pretrained(
        source
    )
    kept = kept_token_ids(source, TEXTS[:2], max_length=32)
    target = tmp_path / "pruned"
    target.mkdir()
    write_pruned_tokenizer(source, target, kept)
    full, small = AutoTokenizer.from_pretrained(source), AutoTokenizer.from_pretrained(target)
    assert len(small) == len(kept) < len(full) / 10
    for text in TEXTS[:2]:  # train texts: the same tokens, renumbered
        assert [int(kept[i]) for i in small(text)["input_ids"]] == full(text)["input_ids"]
    for text in TEXTS[2:]:  # other texts: spelt with kept pieces, never [UNK]
        assert small.unk_token_id not in small(text)["input_ids"]
        assert small.decode(small(text)["input_ids"], skip_special_tokens=True) == full.decode(
            full(text)["input_ids"], skip_special_tokens=True
        )

    model = tiny_model()
    rows = model.get_input_embeddings().weight[torch.as_tensor(kept)].detach().clone()
    prune_vocabulary(model, kept)
    assert model.get_input_embeddings().num_embeddings == len(kept) == model.config.vocab_size
    torch.testing.assert_close(model.get_input_embeddings().weight, rows)


def test_a_saved_shape_of_another_depth_is_refused_in_one_line():
    from trainers.errors import TrainerError

    with pytest.raises(TrainerError, match="saved shape has 3 layers, the architecture 2"):
        apply_shape(tiny_model(), encoder_shape(tiny_model(num_hidden_layers=3)))
