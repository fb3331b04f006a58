"""What a labelled data set looks like before anything trains on it: rows per split, each
label's count and share per split, label co-occurrence, token lengths (and how many texts the
model's max length cuts), empty and duplicated texts, and texts shared between splits.

Pure data: numbers from the loaded splits and a tokenizer's lengths, no model and no Optuna, so
the same profile serves the study, its report (stored as JSON, read without the data) and
`hpo check --profile`. A comment that sits in both train and test inflates every test figure,
so duplicates are counted at three levels: exact, after normalising case and white space, and
"loose", which also ignores punctuation ("Hear, Hear!!!" and "hear hear.").
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import combinations
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from trainers.config import Task
from trainers.data import LabelledSplit
from trainers.progress import chunks, progress

MAX_EXAMPLES = 50  # cross-split duplicate texts kept as examples
EXAMPLE_CHARS = 160
ALL = "(all)"  # the group of every text, in the length table


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelShare(_Record):
    label: str
    split: str
    count: int
    share: float


class LengthStats(_Record):
    """Token lengths (special tokens included, before truncation) of one group of texts."""

    group: str
    texts: int
    p50: float
    p90: float
    p99: float
    max: int
    truncated_share: float  # longer than max_length: the model sees only their start


Level = Literal["exact", "normalised", "loose"]


class SplitDuplicates(_Record):
    """Within one split: empty texts (dropped on loading) and rows repeating an earlier row's
    text, at each level."""

    split: str
    rows: int
    empty: int
    duplicated_exact: int
    duplicated_normalised: int
    duplicated_loose: int


class CrossSplit(_Record):
    """Texts of `first` that come back in `second`, at each level: distinct shared texts, and
    the rows of `second` that hold one."""

    first: str
    second: str
    shared_exact: int
    shared_normalised: int
    shared_loose: int
    rows_exact: int
    rows_normalised: int
    rows_loose: int


class SharedText(_Record):
    """One text found in more than one split; `level`: the strictest at which it matches."""

    text: str
    counts: dict[str, int]
    level: Level


class DataProfile(_Record):
    task: Task
    labels: list[str]
    max_length: int
    rows: dict[str, int]
    label_shares: list[LabelShare]
    cooccurrence: (
        list[list[int]] | None
    )  # multi-label, all splits: rows carrying both labels (diagonal: the label)
    lengths: list[LengthStats]
    length_edges: list[int]  # histogram bins of the token lengths: [edges[i], edges[i + 1])
    length_counts: dict[str, list[int]]  # split → texts per bin
    duplicates: list[SplitDuplicates]
    cross_split: list[CrossSplit]
    shared_examples: list[SharedText]
    baseline_val: dict[str, float | None] = {}  # the all-majority baseline on validation

    def cross_split_total(self, level: Level) -> int:
        """Distinct texts shared by a pair of splits, summed over the pairs."""
        return sum(getattr(c, f"shared_{level}") for c in self.cross_split)


def normalise(text: str) -> str:
    """Case folded, white space collapsed: "Great  POINT " and "great point" are one text."""
    return " ".join(text.casefold().split())


_PUNCTUATION = re.compile(r"[^\w\s]|_")


def loosen(text: str) -> str:
    """Normalised, punctuation and symbols dropped; a text of punctuation only stays as it is
    normalised, so "!!!" and "???" do not match."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split()) or normalise(text)


KEYS = {"exact": lambda t: t, "normalised": normalise, "loose": loosen}


def token_lengths(texts: Sequence[str], tokenizer, chunk: int = 1024) -> np.ndarray:
    """Each text's token count with special tokens and without truncation."""
    out: list[int] = []
    steps = chunks(len(texts), chunk)
    for part in progress(steps, "profile: token lengths", len(steps), "chunk"):
        encoded = tokenizer(
            list(texts[part]), add_special_tokens=True, truncation=False, verbose=False
        )["input_ids"]
        out += map(len, encoded)
    return np.asarray(out, dtype=np.int64)


def profile_splits(
    splits: dict[str, LabelledSplit],
    task: Task,
    labels: Sequence[str],
    lengths: dict[str, np.ndarray],
    max_length: int,
) -> DataProfile:
    """The profile of `splits` (name → split, in reading order); `lengths[name]` holds that
    split's token_lengths."""
    names = list(labels)
    return DataProfile(
        task=task,
        labels=names,
        max_length=max_length,
        rows={name: len(s.texts) for name, s in splits.items()},
        label_shares=label_shares(splits, task, names),
        cooccurrence=cooccurrence(splits) if task == "multi_label" else None,
        lengths=length_stats(splits, task, names, lengths, max_length),
        **length_histogram({n: lengths[n] for n in splits}),
        duplicates=[split_duplicates(name, s) for name, s in splits.items()],
        cross_split=cross_split(splits),
        shared_examples=shared_examples(splits),
    )


def indicators(split: LabelledSplit, task: Task, n_labels: int) -> np.ndarray:
    """bool (rows, labels): which labels (or the one class) each row carries."""
    if task == "multi_label":
        return np.asarray(split.labels) > 0
    return np.eye(n_labels, dtype=bool)[np.asarray(split.labels, dtype=np.int64)]


def label_shares(
    splits: dict[str, LabelledSplit], task: Task, names: list[str]
) -> list[LabelShare]:
    out = []
    for name in names:
        j = names.index(name)
        for split_name, split in splits.items():
            count = int(indicators(split, task, len(names))[:, j].sum())
            out.append(
                LabelShare(
                    label=name,
                    split=split_name,
                    count=count,
                    share=count / len(split.texts) if split.texts else 0.0,
                )
            )
    return out


def cooccurrence(splits: dict[str, LabelledSplit]) -> list[list[int]]:
    y = np.concatenate([np.asarray(s.labels) > 0 for s in splits.values()]).astype(np.int64)
    return (y.T @ y).tolist()


def length_stats(
    splits: dict[str, LabelledSplit],
    task: Task,
    names: list[str],
    lengths: dict[str, np.ndarray],
    max_length: int,
) -> list[LengthStats]:
    """Over every split together: all texts, then the texts carrying each label (or class)."""
    every = np.concatenate([lengths[n] for n in splits])
    carries = np.concatenate([indicators(s, task, len(names)) for s in splits.values()])
    groups = [(ALL, every), *((name, every[carries[:, j]]) for j, name in enumerate(names))]
    return [_length_stats(group, values, max_length) for group, values in groups]


def length_histogram(lengths: dict[str, np.ndarray], bins: int = 40) -> dict:
    """Per split, texts per token-length bin; one set of bins for every split."""
    longest = max((int(v.max()) for v in lengths.values() if len(v)), default=1)
    step = max(1, -(-longest // bins))
    edges = np.arange(0, longest + step + 1, step)
    counts = {
        name: np.histogram(values, edges)[0].astype(int).tolist()
        for name, values in lengths.items()
    }
    return {"length_edges": edges.tolist(), "length_counts": counts}


def _length_stats(group: str, values: np.ndarray, max_length: int) -> LengthStats:
    if not len(values):
        return LengthStats(group=group, texts=0, p50=0, p90=0, p99=0, max=0, truncated_share=0.0)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return LengthStats(group=group, texts=len(values), p50=float(p50), p90=float(p90), p99=float(p99), max=int(values.max()),
                       truncated_share=float((values > max_length).mean()))  # fmt: skip


def split_duplicates(name: str, split: LabelledSplit) -> SplitDuplicates:
    texts = split.texts
    repeated = {level: len(texts) - len(set(map(key, texts))) for level, key in KEYS.items()}
    return SplitDuplicates(
        split=name,
        rows=len(texts),
        empty=split.n_dropped_empty,
        **{f"duplicated_{k}": v for k, v in repeated.items()},
    )


def cross_split(splits: dict[str, LabelledSplit]) -> list[CrossSplit]:
    out = []
    for first, second in combinations(splits, 2):
        fields: dict[str, int] = {}
        for level, key in KEYS.items():
            keys_a, keys_b = (
                set(map(key, splits[first].texts)),
                [key(t) for t in splits[second].texts],
            )
            fields[f"shared_{level}"] = len(keys_a & set(keys_b))
            fields[f"rows_{level}"] = sum(k in keys_a for k in keys_b)
        out.append(CrossSplit(first=first, second=second, **fields))
    return out


def shared_examples(
    splits: dict[str, LabelledSplit], limit: int = MAX_EXAMPLES
) -> list[SharedText]:
    """Texts found (loosely) in more than one split, most frequent first."""
    counts: dict[str, Counter] = defaultdict(Counter)
    forms: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name, split in splits.items():
        for text in split.texts:
            key = loosen(text)
            counts[key][name] += 1
            forms[key][name].add(text)
    shared = sorted(
        (k for k, c in counts.items() if len(c) > 1), key=lambda k: (-sum(counts[k].values()), k)
    )
    out = []
    for key in shared[:limit]:
        by_split = forms[key]
        level = next(lv for lv in ("exact", "normalised", "loose") if _meet(by_split, KEYS[lv]))
        example = min(min(texts) for texts in by_split.values())
        out.append(SharedText(text=_clip(example), counts=dict(counts[key]), level=level))
    return out


def _meet(by_split: dict[str, set[str]], key) -> bool:
    """Two splits hold texts equal under `key`."""
    return any(
        {key(t) for t in by_split[a]} & {key(t) for t in by_split[b]}
        for a, b in combinations(by_split, 2)
    )


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"
