"""The hand-made feature extractor against the real lexicon packages (no mocks).

Expected lexicon scores are worked out by hand from the shipped entries, quoted next to each
assertion, so a changed lexicon or tokenisation shows up as a failing number.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testing.data import default_data_root
from trainers.features import (
    FEATURES_FILE,
    RAW_FEATURE_NAMES,
    TextFeatureExtractor,
    clean_for_lexicons,
    raw_features,
)

COVID_DIR = default_data_root() / "covid-tweets"

TRAIN = [
    "I LOVE this, it's not bad at all!! So happy @bob https://t.co/x1Y2",
    "Panic buying is terrible. Stores are EMPTY? #COVID19",
    "Stock up on toilet paper and hand sanitizer before the stores run out",
    "Prices for food keep going up, shoppers are worried about the crisis",
    "Great news: the supermarket restocked the shelves today",
    "Why is everyone hoarding pasta? I hate this panic",
    "Grocery workers are heroes, thank you so much",
    "Online orders delayed again, delivery slots all gone",
]
VAL = [  # much longer and shoutier than TRAIN: a refit would move the statistics
    "WHY WHY WHY!!! NOBODY LISTENS!!! " * 5,
    "Extraordinary, unprecedented, catastrophic circumstances necessitate comprehensive responses. "
    * 3,
]
DEGENERATE = ["", "https://t.co/AbC123", "😷🙏😷", "!!! 123 ???", "@someone", "   \n\t "]


def _hand(extractor: TextFeatureExtractor) -> slice:
    """The hand-made columns come first, TF-IDF after."""
    assert extractor.feature_names[: len(RAW_FEATURE_NAMES)] == [
        f"hand__{n}" for n in RAW_FEATURE_NAMES
    ]
    return slice(0, len(RAW_FEATURE_NAMES))


def _raw_matrix(texts: list[str]) -> np.ndarray:
    return np.array([[raw_features(t)[n] for n in RAW_FEATURE_NAMES] for t in texts])


def test_cleaning_keeps_lowercase_ascii_words_and_bangs() -> None:
    text = "Check https://t.co/AbC and @WHO_int NOW!!! #Covid-19 ... really?"
    assert clean_for_lexicons(text) == "check and now!!! covid 19 really?"
    assert clean_for_lexicons("Café&amp;bar — we can’t stand it 😷") == "cafe bar we cant stand it"


def test_counts_style_and_lexicons_of_a_positive_tweet() -> None:
    f = raw_features(TRAIN[0])
    # Prose without mention and URL: "I LOVE this, it's not bad at all!! So happy" (43 chars).
    # Words: i love this its not bad at all so happy.
    assert f["n_chars"] == 43
    assert f["n_words"] == 10
    assert f["mean_word_len"] == 3.0  # 1+4+4+3+3+3+2+3+2+5 = 30
    assert f["unique_word_ratio"] == 1.0
    assert f["n_sentences"] == 2
    assert (f["n_exclamations"], f["n_questions"]) == (2, 0)
    assert f["digit_ratio"] == 0.0  # the URL's digits don't count
    assert f["all_caps_ratio"] == pytest.approx(
        1 / 11
    )  # LOVE of I LOVE this it s not bad at all So happy
    assert (f["n_negators"], f["n_intensifiers"]) == (1, 1)  # not; so
    # AFINN-en-165: love +3, bad -3, happy +3.
    assert (f["afinn_sum"], f["afinn_mean"]) == (3.0, 1.0)
    # NRC: love {joy, positive}; bad {anger, disgust, fear, negative, sadness};
    # happy {anticipation, joy, positive, trust}: 11 associations.
    expected = {"joy": 2, "positive": 2, "anger": 1, "disgust": 1, "fear": 1, "negative": 1,
                "sadness": 1, "anticipation": 1, "trust": 1, "surprise": 0}  # fmt: skip
    for emotion, count in expected.items():
        assert f[f"nrc_{emotion}"] == pytest.approx(count / 11), emotion


def test_counts_style_and_lexicons_of_a_negative_tweet() -> None:
    f = raw_features(TRAIN[1])
    # "Panic buying is terrible." + " Stores are EMPTY?" + " #COVID19" = 25 + 18 + 9 chars.
    assert f["n_chars"] == 52
    assert f["n_words"] == 8  # panic buying is terrible stores are empty covid19
    assert f["mean_word_len"] == 42 / 8
    assert f["n_sentences"] == 3
    assert (f["n_exclamations"], f["n_questions"]) == (0, 1)
    assert f["digit_ratio"] == 2 / 52
    assert f["all_caps_ratio"] == 2 / 8  # EMPTY, COVID
    assert (f["n_negators"], f["n_intensifiers"]) == (0, 0)
    # AFINN-en-165: panic -3, terrible -3, empty -1.
    assert f["afinn_sum"] == -7.0
    assert f["afinn_mean"] == pytest.approx(-7 / 3)
    # NRC: panic {fear, negative}; terrible {anger, disgust, fear, negative, sadness}.
    for emotion, count in {
        "fear": 2,
        "negative": 2,
        "anger": 1,
        "disgust": 1,
        "sadness": 1,
    }.items():
        assert f[f"nrc_{emotion}"] == pytest.approx(count / 7), emotion
    assert f["nrc_joy"] == f["nrc_positive"] == 0.0
    # en-sentiment.xml: terrible (-1.0, 1.0) in all senses; empty averages (-0.4, 0.6) and
    # (0.2, 0.4) to (-0.1, 0.5); the tweet is the mean of the two adjectives.
    assert f["polarity"] == pytest.approx(-0.55)
    assert f["subjectivity"] == pytest.approx(0.75)


def test_readability() -> None:
    # 10 words in 2 sentences; one syllable each except quar-an-tine (3); all Dale-Chall easy
    # words except "quarantine" (10 % difficult > 5 %: the 3.6365 adjustment applies).
    f = raw_features("The cat sat on the mat. The dog ate quarantine.")
    assert f["flesch_reading_ease"] == pytest.approx(206.835 - 1.015 * 5 - 84.6 * 12 / 10)
    assert f["smog_index"] == pytest.approx(1.043 * math.sqrt(30 * 1 / 2) + 3.1291)
    assert f["dale_chall"] == pytest.approx(0.1579 * 10 + 0.0496 * 5 + 3.6365)


@pytest.mark.parametrize("text", DEGENERATE)
def test_degenerate_tweets_give_finite_raw_features(text: str) -> None:
    f = raw_features(text)
    assert list(f) == list(RAW_FEATURE_NAMES)
    assert all(math.isfinite(v) for v in f.values())


def test_degenerate_tweets_transform_to_finite_values() -> None:
    extractor = TextFeatureExtractor(tfidf_top_n=5).fit(TRAIN + DEGENERATE)
    assert np.isfinite(extractor.transform(DEGENERATE)).all()
    assert np.isfinite(extractor.transform(TRAIN)).all()


def test_transform_uses_train_statistics_only() -> None:
    extractor = TextFeatureExtractor(tfidf_top_n=5)
    x_train = extractor.fit_transform(TRAIN)
    hand = _hand(extractor)
    assert x_train.dtype == np.float32 and x_train.shape == (len(TRAIN), extractor.n_features)
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)

    raw_train = _raw_matrix(TRAIN)
    np.testing.assert_allclose(extractor.scaler.mean_[hand], raw_train.mean(axis=0))
    mean, scale = extractor.scaler.mean_.copy(), extractor.scaler.scale_.copy()
    vocabulary = dict(
        extractor.pipeline.named_steps["features"].named_transformers["tfidf"].vocabulary_
    )

    x_val = extractor.transform(VAL)
    np.testing.assert_array_equal(extractor.scaler.mean_, mean)
    np.testing.assert_array_equal(extractor.scaler.scale_, scale)
    assert (
        extractor.pipeline.named_steps["features"].named_transformers["tfidf"].vocabulary_
        == vocabulary
    )
    expected = (_raw_matrix(VAL) - mean[hand]) / scale[hand]
    np.testing.assert_allclose(x_val[:, hand], expected, rtol=1e-5, atol=1e-5)
    assert abs(x_val[:, hand].mean()) > 1  # shifted: nobody re-centred it on VAL


def test_fit_then_transform_equals_fit_transform() -> None:
    together = TextFeatureExtractor(tfidf_top_n=5).fit_transform(TRAIN)
    np.testing.assert_array_equal(
        TextFeatureExtractor(tfidf_top_n=5).fit(TRAIN).transform(TRAIN), together
    )


def test_tfidf_size_is_a_setting() -> None:
    none = TextFeatureExtractor(tfidf_top_n=0).fit(TRAIN)
    assert none.feature_names == [f"hand__{n}" for n in RAW_FEATURE_NAMES]
    five = TextFeatureExtractor(tfidf_top_n=5).fit(TRAIN)
    assert five.n_features == len(RAW_FEATURE_NAMES) + 5
    assert all(n.startswith("tfidf__") for n in five.feature_names[len(RAW_FEATURE_NAMES) :])
    with pytest.raises(ValueError):
        TextFeatureExtractor(tfidf_top_n=-1)


def test_save_and_load_reproduce_the_output(tmp_path: Path) -> None:
    extractor = TextFeatureExtractor(tfidf_top_n=5).fit(TRAIN)
    path = extractor.save(tmp_path / "model")
    assert path == tmp_path / "model" / FEATURES_FILE and path.is_file()
    loaded = TextFeatureExtractor.load(tmp_path / "model")
    assert loaded.tfidf_top_n == 5
    assert loaded.feature_names == extractor.feature_names
    np.testing.assert_array_equal(
        loaded.transform(VAL + DEGENERATE), extractor.transform(VAL + DEGENERATE)
    )


def test_fits_on_the_real_covid_tweets() -> None:
    if not (COVID_DIR / "train.csv").is_file():
        pytest.skip(f"COVID tweets not found under {COVID_DIR} (set DATA_DIR)")
    train = pd.read_csv(COVID_DIR / "train.csv", encoding="utf-8-sig")["OriginalTweet"].tolist()
    extractor = TextFeatureExtractor(tfidf_top_n=50)
    x = extractor.fit_transform(train)
    assert x.shape == (len(train), len(RAW_FEATURE_NAMES) + 50)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-4)
    assert "tfidf__coronavirus" in extractor.feature_names
    if (COVID_DIR / "val.csv").is_file():
        val = pd.read_csv(COVID_DIR / "val.csv", encoding="utf-8-sig")["OriginalTweet"].tolist()
        assert np.isfinite(extractor.transform(val)).all()
