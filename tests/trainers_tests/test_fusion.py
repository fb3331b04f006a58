"""The fusion model: pooling, the features branch, saving and reloading, and a study that uses it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from optuna.trial import TrialState
from transformers import BertForSequenceClassification

from hpo.report import summarize, trials_table
from hpo.spec import load_spec
from testing.data import COVID_CLASSES
from testing.specs import tiny_architecture, tiny_covid_spec, tiny_train_config
from testing.studies import run_tiny_study
from trainers.checkpoint import FEATURES_FILE, LabelInfo, load_best, save_best
from trainers.config import DataConfig, Hyperparams, ModelConfig, TrainConfig
from trainers.data import load_split
from trainers.evaluate import predict_probabilities
from trainers.fusion import FUSION_FILE, FusionClassifier, build_model, pool
from trainers.loop import train_and_evaluate

N_FEATURES = 7
LABELS = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4])  # a skewed class prior


def _model(features: bool, pooling: str) -> torch.nn.Module:
    torch.manual_seed(0)
    hyper = Hyperparams(
        features=features, pooling=pooling, text_projection_dim=16, feature_dim=8, dropout=0.1
    )
    model = build_model(
        ModelConfig(from_config=tiny_architecture("bert")),
        "multi_class",
        COVID_CLASSES,
        LABELS,
        hyper,
        N_FEATURES,
        pad_token_id=0,
    )
    return model.eval()


def _batch(pad: int = 0) -> dict:
    """Two texts of 5 and 3 tokens, padded to 5 + `pad` columns."""
    ids = torch.tensor(
        [[101, 7592, 2088, 999, 102] + [0] * pad, [101, 7592, 102, 0, 0] + [0] * pad]
    )
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_forward_with_and_without_features(pooling):
    with_features, text_only = (
        _model(True, pooling),
        _model(False, pooling) if pooling == "mean" else None,
    )
    features = torch.randn(2, N_FEATURES)
    assert (
        isinstance(with_features, FusionClassifier)
        and with_features.feature_proj[0].in_features == N_FEATURES
    )
    assert with_features(**_batch(), features=features).logits.shape == (2, len(COVID_CLASSES))
    with pytest.raises(ValueError, match="takes 7 features"):
        with_features(**_batch())
    if text_only is not None:
        assert not hasattr(text_only, "feature_proj")
        assert text_only(**_batch()).logits.shape == (2, len(COVID_CLASSES))
        with pytest.raises(ValueError, match="takes 0 features"):
            text_only(**_batch(), features=features)


def test_features_change_the_prediction():
    model = _model(True, "mean")
    a = model(**_batch(), features=torch.zeros(2, N_FEATURES)).logits
    b = model(**_batch(), features=torch.full((2, N_FEATURES), 3.0)).logits
    assert not torch.allclose(a, b, atol=1e-4)


def test_cls_without_features_is_the_plain_transformers_classifier():
    assert isinstance(_model(False, "cls"), BertForSequenceClassification)


@pytest.mark.parametrize("features", [True, False])
def test_output_bias_starts_at_the_log_class_priors(features):
    counts = np.bincount(LABELS, minlength=5) + 1.0
    bias = _model(features, "mean").output_layer.bias.detach().numpy()
    np.testing.assert_allclose(bias, np.log(counts / counts.sum()), rtol=1e-6)


def test_masked_mean_averages_real_tokens_only():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pooled = pool(hidden, mask, "mean")
    torch.testing.assert_close(pooled[1], hidden[1, :2].mean(dim=0))
    assert not torch.allclose(
        pooled[1], hidden[1].mean(dim=0)
    )  # what averaging the padding in gives
    torch.testing.assert_close(pool(hidden, mask, "cls"), hidden[:, 0])


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_extra_padding_does_not_change_the_output(pooling):
    model = _model(True, pooling)
    features = torch.randn(2, N_FEATURES)
    with torch.no_grad():
        short = model(**_batch(), features=features).logits
        padded = model(**_batch(pad=11), features=features).logits
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def _covid_config(tmp_path, real_data, **hyper) -> TrainConfig:
    root = (
        real_data.slice(tmp_path / "data", "covid-tweets", {"train": 96, "val": 48})
        / "covid-tweets"
    )
    data = DataConfig(train_path=root / "train.csv", val_path=root / "val.csv", text_column="OriginalTweet",
                      label_column="Sentiment", class_names=COVID_CLASSES, cache_dir=tmp_path / "cache")  # fmt: skip
    settings = {
        "epochs": 1,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "tfidf_top_n": 40,
        "feature_dim": 8,
        "text_projection_dim": 16,
        **hyper,
    }
    return tiny_train_config(
        data, task="multi_class", monitor="accuracy", max_length=64, **settings
    )


def test_saved_model_with_features_predicts_the_same_probabilities_after_reload(
    tmp_path, real_data
):
    config = _covid_config(tmp_path, real_data, features=True, pooling="mean")
    result = train_and_evaluate(config, keep_model=True)
    extractor = result.extras["feature_extractor"]
    assert extractor is not None and isinstance(result.model, FusionClassifier)
    labels = LabelInfo("multi_class", COVID_CLASSES, "OriginalTweet", 64)
    out = save_best(tmp_path / "best", result.model, result.tokenizer, labels, extractor=extractor)
    assert (out / FEATURES_FILE).is_file() and (out / FUSION_FILE).is_file()

    reloaded = load_best(out)
    assert isinstance(reloaded.model, FusionClassifier) and reloaded.extractor is not None
    val = load_split(config.data.val_path, config.data, config.task)
    probs, _ = predict_probabilities(reloaded, val.texts)
    np.testing.assert_allclose(probs, result.val_probs, atol=1e-5)
    assert not np.allclose(probs, probs.mean(axis=0), atol=1e-3)  # not a constant prediction


def test_features_off_gives_no_extractor(tmp_path, real_data):
    result = train_and_evaluate(_covid_config(tmp_path, real_data, features=False, pooling="mean"))
    assert result.extras["feature_extractor"] is None


def test_tiny_study_searching_features_runs_through_the_trainer(tmp_path, real_data):
    data_dir = real_data.slice(
        tmp_path / "data", "covid-tweets", {"train": 96, "val": 48, "test": 48}
    )
    spec_path = tiny_covid_spec(
        tmp_path / "tiny-covid.yaml",
        n_trials=2,
        sampler={"type": "grid"},
        training={"pooling": "mean"},
        search_space={"features": {"type": "categorical", "choices": [True, False]}},
    )
    spec = load_spec(str(spec_path))
    study = run_tiny_study(spec_path, f"sqlite:///{tmp_path / 'optuna.db'}", data_dir)

    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert sorted(t.params["features"] for t in trials) == [False, True]
    assert all(0 <= t.user_attrs["epoch_001"]["accuracy"] <= 1 for t in trials)
    summary = summarize(study, spec)
    table = summary.table("features")
    assert list(table["features"]) == ["with features", "without features", "with − without"]
    assert list(table["complete_trials"][:2]) == [1, 1]
    by_value = {t.params["features"]: t.value for t in trials}
    assert table["best"].iloc[2] == pytest.approx(by_value[True] - by_value[False])
    assert set(trials_table(study, spec)["features"]) == {True, False}
