"""The embedding side model, with the packaged MiniLM as its frozen encoder, fitted on real UCC
comments: its features are the encoder's mean-pooled output at unit length, it ranks unseen
comments better than chance, it reloads from its files to the same probabilities, and a
damaged card or an encoder other than the one it was fitted with is one line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from testing.data import RealData
from trainers.blend import Blend
from trainers.checkpoint import EMBEDDINGS_FILE
from trainers.config import PACKAGED_MINILM
from trainers.embeddings import EmbeddingModel, SentenceEncoder
from trainers.errors import TrainerError

LABELS = ["healthy", "antagonize", "hostile"]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder.load(PACKAGED_MINILM, 128)


@pytest.fixture(scope="module")
def ucc(real_data: RealData) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.read_csv(real_data.root / "ucc" / "train.csv").head(800)
    val = pd.read_csv(real_data.root / "ucc" / "val.csv")
    return train, val


@pytest.fixture(scope="module")
def fitted(encoder, ucc) -> EmbeddingModel:
    train, _ = ucc
    return EmbeddingModel.fit(train.comment.tolist(), train[LABELS].to_numpy(), "multi_label", encoder)  # fmt: skip


def test_a_text_is_its_mean_token_embedding_at_unit_length(encoder):
    texts = ["You are absolutely right, thanks.", "no", "Nobody asked for this " * 40]
    got = encoder.embed(texts)  # batched: padded to the longest
    device = next(encoder.model.parameters()).device
    for text, row in zip(texts, got, strict=True):  # one at a time: no padding at all
        ids = encoder.tokenizer(text, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = encoder.model(**ids.to(device)).last_hidden_state[0].float().cpu().numpy()
        mean = hidden.mean(axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), atol=2e-4)
    assert not np.allclose(got[0], got[1])


def test_it_ranks_unseen_comments_better_than_chance(fitted, ucc):
    _, val = ucc
    probs = fitted.probabilities(val.comment.tolist())
    aucs = [roc_auc_score(val[name], probs[:, j]) for j, name in enumerate(LABELS)]
    assert probs.shape == (len(val), len(LABELS)) and min(aucs) > 0.6, aucs


def test_it_reloads_from_its_files_to_the_same_probabilities(fitted, ucc, tmp_path):
    _, val = ucc
    texts = val.comment.tolist()[:200]
    fitted.save(tmp_path, 0.25)
    assert {f.name for f in tmp_path.iterdir()} == {EMBEDDINGS_FILE, "embeddings.safetensors"}
    loaded = Blend.load(tmp_path)
    assert loaded.weights == {"embeddings": 0.25}
    model, _ = loaded.parts["embeddings"]
    expected = fitted.probabilities(texts)
    np.testing.assert_allclose(model.probabilities(texts), expected, atol=1e-6)
    model_probs = np.full((len(texts), len(LABELS)), 0.2, dtype=np.float32)
    np.testing.assert_allclose(
        loaded.mix(model_probs, texts), 0.75 * 0.2 + 0.25 * expected, atol=1e-5
    )


def test_multi_class_rows_sum_to_one(encoder, ucc):
    train, val = ucc
    classes = train[LABELS].to_numpy().argmax(axis=1)
    model = EmbeddingModel.fit(train.comment.tolist(), classes, "multi_class", encoder)
    probs = model.probabilities(val.comment.tolist()[:100])
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)


def test_another_encoder_or_a_damaged_card_is_one_line(fitted, tmp_path):
    fitted.save(tmp_path, 0.3)
    card = json.loads((tmp_path / EMBEDDINGS_FILE).read_text())

    def load_with(**changes) -> str:
        (tmp_path / EMBEDDINGS_FILE).write_text(json.dumps({**card, **changes}))
        with pytest.raises(TrainerError) as e:
            EmbeddingModel.load(tmp_path)
        assert "\n" not in str(e.value)
        return str(e.value)

    assert "not the one the blend was fitted with" in load_with(encoder_sha256="0" * 64)
    missing = load_with(encoder=str(tmp_path / "no-such-encoder"))
    assert EMBEDDINGS_FILE in missing and "no such folder" in missing
    assert "do not fit" in load_with(n_outputs=5)
    (tmp_path / EMBEDDINGS_FILE).write_text("{")
    with pytest.raises(TrainerError, match="cannot be read"):
        EmbeddingModel.load(tmp_path)
