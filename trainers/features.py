"""Hand-made text features that sit beside the transformer's embedding.

Counts, style, lexicon scores (AFINN, NRC emotions, TextBlob's pattern lexicon), readability
and an optional TF-IDF of the top-N words, standardised with statistics from the training
texts only. Everything runs offline from lexicons the packages ship; nothing is downloaded.

The fitted state is one scikit-learn pipeline. It is saved next to the model as plain numbers in
`features.json` (the TF-IDF vocabulary and idf, the scaler's means and scales) and rebuilt from
them, never unpickled: a model directory is data, and loading it cannot run code. The rebuilt
pipeline reproduces the training-time transform exactly.
"""

from __future__ import annotations

import html
import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from afinn import Afinn
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pyphen import Pyphen
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from trainers.errors import TrainerError

FEATURES_FILE = "features.json"

NEGATORS = frozenset(
    [
        "no",
        "not",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "nowhere",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "hasnt",
        "havent",
        "hadnt",
        "aint",
        "without",
    ]
)
INTENSIFIERS = frozenset(
    [
        "very",
        "really",
        "so",
        "extremely",
        "totally",
        "absolutely",
        "completely",
        "highly",
        "incredibly",
        "super",
        "too",
        "seriously",
        "utterly",
        "truly",
        "literally",
    ]
)
NRC_EMOTIONS = (
    "anger", "anticipation", "disgust", "fear", "joy",
    "sadness", "surprise", "trust", "positive", "negative",
)  # fmt: skip

RAW_FEATURE_NAMES = (
    "n_chars", "n_words", "mean_word_len", "unique_word_ratio", "n_sentences",
    "n_exclamations", "n_questions", "digit_ratio", "all_caps_ratio",
    "n_negators", "n_intensifiers", "afinn_sum", "afinn_mean",
    *(f"nrc_{e}" for e in NRC_EMOTIONS),
    "polarity", "subjectivity", "flesch_reading_ease", "smog_index", "dale_chall",
)  # fmt: skip

_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
_PUNCT = re.compile(r"[^a-z0-9\s!?']+")
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+")
_LETTERS = re.compile(r"[A-Za-z]+")
# A decimal point ("$2.99") does not end a sentence; tweets often omit the space after one.
_SENTENCE_END = re.compile(r"[.!?]+(?!\d)")
_ALNUM = re.compile(r"[A-Za-z0-9]")


# ---- text preparation -------------------------------------------------------------------


def _prose(text: str) -> str:
    """The raw text (case and punctuation kept) without URLs and @mentions, whose random
    characters would only add noise to the style counts."""
    return _MENTION.sub(" ", _URL.sub(" ", html.unescape(text)))


def clean_for_lexicons(text: str) -> str:
    """Lower-case ASCII words plus `!` and `?` (which carry intensity for the sentiment
    lexicons); URLs, @mentions and other punctuation removed, apostrophes dropped so that
    "don't" becomes the lexicon-style "dont"."""
    text = _prose(text.lower()).replace("\u2019", "'")
    if not text.isascii():  # keep accented letters' base letter: "café" -> "cafe"
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    text = _PUNCT.sub(" ", _NON_ASCII.sub(" ", text)).replace("'", "")
    return _SPACES.sub(" ", text).strip()


# ---- lexicons, loaded once per process ----------------------------------------------------


@cache
def _afinn() -> Afinn:
    return Afinn(language="en")


@cache
def _nrc_lexicon() -> dict[str, list[str]]:
    """NRCLex's shipped lexicon, read directly: `NRCLex.load_raw_text` lemmatises with
    TextBlob, which needs the WordNet corpus download."""
    return json.loads(resources.files("nrclex.data").joinpath("nrc_en.json").read_text("utf-8"))


@cache
def _pattern_analyzer() -> Any:
    """TextBlob's PatternAnalyzer: its lexicon ships in the package (no corpus download).
    Imported lazily because importing textblob imports nltk (~2 s)."""
    from textblob.sentiments import PatternAnalyzer

    return PatternAnalyzer()


@cache
def _easy_words() -> frozenset[str]:
    """textstat's Dale-Chall list of easy words."""
    ref = resources.files("textstat").joinpath("resources/en/easy_words.txt")
    return frozenset(ref.read_text("utf-8").split())


@cache
def _hyphenator() -> Pyphen:
    return Pyphen(lang="en_US")


@lru_cache(maxsize=1 << 16)
def _syllables(word: str) -> int:
    """Syllables by hyphenation points, as textstat counts words missing from CMUdict."""
    return len(_hyphenator().positions(word.lower())) + 1


# ---- feature groups -----------------------------------------------------------------------


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def _style(prose: str, words: list[str]) -> dict[str, float]:
    letter_words = _LETTERS.findall(prose)
    sentences = [s for s in _SENTENCE_END.split(prose) if _ALNUM.search(s)]
    return {
        "n_chars": float(len(prose.strip())),
        "n_words": float(len(words)),
        "mean_word_len": _ratio(sum(map(len, words)), len(words)),
        "unique_word_ratio": _ratio(len(set(words)), len(words)),
        "n_sentences": float(len(sentences)),
        "n_exclamations": float(prose.count("!")),
        "n_questions": float(prose.count("?")),
        "digit_ratio": _ratio(sum(c.isdigit() for c in prose), len(prose.strip())),
        "all_caps_ratio": _ratio(
            sum(len(w) > 1 and w.isupper() for w in letter_words), len(letter_words)
        ),
        "n_negators": float(sum(w in NEGATORS for w in words)),
        "n_intensifiers": float(sum(w in INTENSIFIERS for w in words)),
    }


def _afinn_scores(cleaned: str) -> dict[str, float]:
    """Sum and mean over the matched AFINN entries (words and multi-word phrases)."""
    scores = _afinn().scores(cleaned)
    return {"afinn_sum": float(sum(scores)), "afinn_mean": _ratio(sum(scores), len(scores))}


def _nrc_shares(words: list[str]) -> dict[str, float]:
    """Each emotion's share of all emotion associations of the words, as NRCLex's
    `affect_frequencies`."""
    lexicon = _nrc_lexicon()
    counts = Counter(e for w in words for e in lexicon.get(w, ()))
    total = sum(counts.values())
    return {f"nrc_{e}": _ratio(counts[e], total) for e in NRC_EMOTIONS}


def _pattern_sentiment(cleaned: str) -> dict[str, float]:
    polarity, subjectivity = _pattern_analyzer().analyze(cleaned)
    return {"polarity": float(polarity), "subjectivity": float(subjectivity)}


@cache
def _textstat():
    """textstat takes a second or more to import: only texts that get hand-made features pay it,
    not every process that loads a model."""
    import textstat

    return textstat


def _readability(prose: str) -> dict[str, float]:
    """Flesch reading ease, SMOG and Dale-Chall with textstat's word and sentence counts and
    easy-word list. Syllables come from Pyphen because textstat's own English syllable count
    downloads NLTK's CMUdict at run time."""
    words = _textstat().remove_punctuation(prose).split()
    if not words:
        return {"flesch_reading_ease": 0.0, "smog_index": 0.0, "dale_chall": 0.0}
    syllables = [_syllables(w) for w in words]
    sentences = _textstat().sentence_count(prose)
    words_per_sentence = len(words) / sentences
    difficult_pct = 100 * sum(w.lower() not in _easy_words() for w in words) / len(words)
    polysyllables = sum(s >= 3 for s in syllables)
    dale_chall = 0.1579 * difficult_pct + 0.0496 * words_per_sentence
    return {
        "flesch_reading_ease": 206.835
        - 1.015 * words_per_sentence
        - 84.6 * sum(syllables) / len(words),
        "smog_index": 1.043 * math.sqrt(30 * polysyllables / sentences) + 3.1291,
        "dale_chall": dale_chall + (3.6365 if difficult_pct > 5 else 0.0),
    }


def raw_features(text: str) -> dict[str, float]:
    """The unstandardised hand-made features of one text, keyed as `RAW_FEATURE_NAMES`."""
    prose, cleaned = _prose(text), clean_for_lexicons(text)
    words = _WORD.findall(cleaned)
    return {
        **_style(prose, words),
        **_afinn_scores(cleaned),
        **_nrc_shares(words),
        **_pattern_sentiment(cleaned),
        **_readability(prose),
    }


# ---- the fitted pipeline ------------------------------------------------------------------


def _raw_matrix(texts: Iterable[str]) -> np.ndarray:
    rows = [[f[n] for n in RAW_FEATURE_NAMES] for f in map(raw_features, texts)]
    return np.array(rows, dtype=np.float64).reshape(-1, len(RAW_FEATURE_NAMES))


def _raw_names(transformer: Any, input_features: Any) -> np.ndarray:
    return np.asarray(RAW_FEATURE_NAMES, dtype=object)


def _dense(matrix: Any) -> np.ndarray:
    """StandardScaler can only centre dense input; TF-IDF of a few hundred words is small."""
    return matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)


def _build_pipeline(tfidf_top_n: int) -> Pipeline:
    parts: list[tuple[str, Any]] = [
        ("hand", FunctionTransformer(_raw_matrix, feature_names_out=_raw_names))
    ]
    if tfidf_top_n > 0:
        tfidf = TfidfVectorizer(
            preprocessor=clean_for_lexicons,
            token_pattern=r"\b[a-z][a-z]+\b",
            stop_words="english",
            max_features=tfidf_top_n,
        )
        parts.append(("tfidf", tfidf))
    return Pipeline([
        ("features", FeatureUnion(parts)),
        ("dense", FunctionTransformer(_dense, accept_sparse=True, feature_names_out="one-to-one")),
        ("scale", StandardScaler()),
    ])  # fmt: skip


class TextFeatureExtractor:
    """Fit on the training texts only; `transform` then applies the training statistics
    (TF-IDF vocabulary and idf, means and scales) to any split."""

    def __init__(self, tfidf_top_n: int = 300) -> None:
        if tfidf_top_n < 0:
            raise ValueError(f"tfidf_top_n must be >= 0, got {tfidf_top_n}")
        self.tfidf_top_n = tfidf_top_n
        self.pipeline = _build_pipeline(tfidf_top_n)

    def fit(self, texts: Sequence[str]) -> TextFeatureExtractor:
        self.pipeline.fit(list(texts))
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.transform(list(texts)).astype(np.float32)

    def fit_transform(self, texts: Sequence[str]) -> np.ndarray:
        return self.pipeline.fit_transform(list(texts)).astype(np.float32)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def feature_names(self) -> list[str]:
        """`hand__<name>` for the hand-made features, `tfidf__<word>` for the TF-IDF words."""
        return [str(n) for n in self.pipeline.get_feature_names_out()]

    @property
    def scaler(self) -> StandardScaler:
        return self.pipeline.named_steps["scale"]

    @property
    def tfidf(self) -> TfidfVectorizer | None:
        parts = dict(self.pipeline.named_steps["features"].transformer_list)
        return parts.get("tfidf")

    def state(self) -> FittedFeatures:
        """The fitted statistics as plain numbers."""
        tfidf, scaler = self.tfidf, self.scaler
        vocabulary = (
            sorted(tfidf.vocabulary_, key=tfidf.vocabulary_.get) if tfidf is not None else []
        )
        return FittedFeatures(
            tfidf_top_n=self.tfidf_top_n,
            hand_features=list(RAW_FEATURE_NAMES),
            vocabulary=vocabulary,
            idf=[float(x) for x in tfidf.idf_] if tfidf is not None else [],
            mean=[float(x) for x in scaler.mean_],
            scale=[float(x) for x in scaler.scale_],
            var=[float(x) for x in scaler.var_],
            n_samples_seen=int(scaler.n_samples_seen_),
        )

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / FEATURES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.state().model_dump_json(indent=1))
        return path

    @classmethod
    def from_state(cls, state: FittedFeatures) -> TextFeatureExtractor:
        """Rebuild the fitted pipeline from its statistics (no fitting, no unpickling)."""
        extractor = cls(state.tfidf_top_n)
        tfidf = extractor.tfidf
        if tfidf is not None:
            tfidf.set_params(vocabulary={word: i for i, word in enumerate(state.vocabulary)})
            tfidf.idf_ = np.asarray(state.idf, dtype=np.float64)
        scaler = extractor.scaler
        scaler.mean_, scaler.scale_, scaler.var_ = (
            np.asarray(v, dtype=np.float64) for v in (state.mean, state.scale, state.var)
        )
        scaler.n_samples_seen_ = state.n_samples_seen
        scaler.n_features_in_ = len(state.mean)
        return extractor

    @classmethod
    def load(cls, directory: str | Path, shown_as: Path | None = None) -> TextFeatureExtractor:
        """Rebuild from `directory`/features.json; errors name `shown_as` (where the user's copy is)."""
        path = Path(directory) / FEATURES_FILE
        shown = Path(shown_as or directory) / FEATURES_FILE
        try:
            state = FittedFeatures.model_validate_json(path.read_bytes())
        except OSError as e:
            raise TrainerError(f"{shown}: cannot be read ({e.strerror or e})") from None
        except ValidationError as e:
            raise TrainerError(
                f"{shown}: not a fitted feature state ({_first_problem(e)}); retrain the model"
            ) from None
        return cls.from_state(state)


class FittedFeatures(BaseModel):
    """What `features.json` holds: every number the fitted pipeline uses, in column order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tfidf_top_n: int
    hand_features: list[str]
    vocabulary: list[str]
    idf: list[float]
    mean: list[float]
    scale: list[float]
    var: list[float]
    n_samples_seen: int

    @model_validator(mode="after")
    def _consistent(self) -> FittedFeatures:
        if self.hand_features != list(RAW_FEATURE_NAMES):
            raise ValueError("its hand-made features are not this version's")
        if (
            self.tfidf_top_n < 0
            or len(self.vocabulary) > self.tfidf_top_n
            or len(set(self.vocabulary)) != len(self.vocabulary)
        ):
            raise ValueError("its vocabulary does not fit tfidf_top_n or repeats a word")
        if len(self.idf) != len(self.vocabulary):
            raise ValueError(f"{len(self.idf)} idf values for {len(self.vocabulary)} words")
        width = len(RAW_FEATURE_NAMES) + len(self.vocabulary)
        if not len(self.mean) == len(self.scale) == len(self.var) == width:
            raise ValueError(f"scaler statistics are not {width} values each")
        if (
            not all(map(math.isfinite, [*self.idf, *self.mean, *self.scale, *self.var]))
            or min(self.scale, default=1) <= 0
        ):
            raise ValueError("a statistic is not a finite number (or a scale is not positive)")
        return self


def _first_problem(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"].removeprefix("Value error, ")
