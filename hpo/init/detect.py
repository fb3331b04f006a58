"""Which column is the text and which are the labels, read off a CSV's values.

0/1 columns ("0.0"/"1.0" too) are multi-label labels; without any, one column with a few
distinct values in every row holds the classes of a multi-class task. The text is the string
column with the longest texts on average. A guess that the values do not settle (two close text
columns, two class columns, a 0/1 column with other values in it) is an InitError naming the
column and the flag that decides it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd

from hpo.init.source import InitError
from trainers.config import Task

MAX_CLASSES = 50
CLOSE = 0.8  # a second text column at least this share of the first's average length is a tie
NEAR_BINARY = 0.9  # a column whose values are this share 0/1 is a label with typos, not a number
LABEL_NAME = re.compile(r"label|class|target|sentiment|category|^y$", re.IGNORECASE)
DATE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2})?)?$")


@dataclass(frozen=True)
class ColumnFacts:
    name: str
    rows: int
    empty: int
    distinct: int
    mean_chars: float
    numeric: bool  # every non-empty value is a number
    zero_one: int  # values that are 0 or 1
    ones: int
    other_example: str | None  # a value that is not 0/1
    date_like: bool
    written_as_floats: bool = False  # some 0/1 values are written "0.0"/"1.0"
    shares: bool = False  # every value is a number in [0, 1], some strictly between

    @property
    def binary(self) -> bool:
        """Only 0/1, both present: a label (a constant column teaches nothing)."""
        return self.rows > 0 and self.zero_one == self.rows and 0 < self.ones < self.rows

    @property
    def near_binary(self) -> bool:
        """Mostly 0/1 with stray values (a typo, an empty cell, a 2): a label that needs fixing,
        unlike a column of shares in [0, 1] such as annotator agreement."""
        mostly = self.rows > 0 and self.zero_one >= NEAR_BINARY * self.rows and self.ones > 0
        return mostly and not self.binary and not self.shares

    @property
    def categorical(self) -> bool:
        """A few distinct values, in every row: could hold the classes."""
        few = 2 <= self.distinct <= min(MAX_CLASSES, self.rows / 2)
        return few and not self.empty and not self.date_like and not self.binary

    @property
    def stringy(self) -> bool:
        return not self.numeric and not self.date_like


def column_facts(name: str, values: pd.Series) -> ColumnFacts:
    stripped = values.astype(str).str.strip()
    filled = stripped[stripped != ""]
    numbers = pd.to_numeric(filled, errors="coerce")
    zero_one = numbers.isin([0.0, 1.0])
    others = stripped[~stripped.index.isin(filled[zero_one].index)]
    return ColumnFacts(
        name=name,
        rows=len(stripped),
        empty=int((stripped == "").sum()),
        distinct=int(filled.nunique()),
        mean_chars=float(stripped.str.len().mean()) if len(stripped) else 0.0,
        numeric=bool(len(filled)) and bool(numbers.notna().all()),
        zero_one=int(zero_one.sum()),
        ones=int((numbers == 1.0).sum()),
        other_example=None if others.empty else str(others.iloc[0]),
        date_like=bool(len(filled)) and bool(filled.str.fullmatch(DATE).all()),
        written_as_floats=bool(filled[zero_one].str.contains(".", regex=False).any()),
        shares=len(filled) == len(stripped)
        and bool(numbers.between(0, 1).all())
        and not bool(zero_one.all()),
    )


@dataclass(frozen=True)
class Detected:
    """The columns and task `hpo init` writes, with what each choice was based on."""

    task: Task
    text_column: str
    label_columns: list[str] | None = None
    label_column: str | None = None
    class_names: list[str] | None = None
    agreement_suffix: str | None = None
    why: dict[str, str] = field(default_factory=dict)  # "task", "text_column", "labels" → reason

    @property
    def labels(self) -> list[str]:
        return self.label_columns or self.class_names or []


def detect(
    frame: pd.DataFrame,
    task: Task | None = None,
    text_column: str | None = None,
    labels: list[str] | None = None,
) -> Detected:
    facts = {str(c): column_facts(str(c), frame[c]) for c in frame.columns}
    for name in [*(labels or []), *([text_column] if text_column else [])]:
        if name not in facts:
            raise InitError(f"no column {name!r}; the columns are {', '.join(map(repr, facts))}")
    chosen = _labels(facts, task, labels, text_column)
    text, text_why = _text_column(facts, text_column, chosen["columns"])
    why = {"task": chosen["why_task"], "labels": chosen["why_labels"], "text_column": text_why}
    if chosen["task"] == "multi_label":
        suffix = agreement_suffix(facts, chosen["columns"], frame)
        return Detected(
            "multi_label", text, label_columns=chosen["columns"], agreement_suffix=suffix, why=why
        )
    column = chosen["columns"][0]
    classes = sorted(frame[column].astype(str).str.strip().unique())
    return Detected("multi_class", text, label_column=column, class_names=classes, why=why)


def _labels(
    facts: dict[str, ColumnFacts], task: Task | None, labels: list[str] | None, text: str | None
) -> dict:
    if labels:
        return _given_labels(facts, task, labels)
    candidates = {n: f for n, f in facts.items() if n != text}
    if task != "multi_class":
        binary = [n for n, f in candidates.items() if f.binary]
        for f in candidates.values():
            if f.near_binary:
                named = ",".join(binary + [f.name])
                raise InitError(f"column {f.name!r} looks like a 0/1 label but holds {f.other_example!r} in {f.rows - f.zero_one} row(s); "
                                f"fix those rows, or name the label columns with --labels {named} (or --labels {','.join(binary) or 'A,B'} without it)")  # fmt: skip
        if binary:
            written = [n for n in binary if facts[n].written_as_floats]
            how = f" ({len(written)} of them written 0.0/1.0 in places)" if written else ""
            return {"task": "multi_label", "columns": binary,
                    "why_task": f"{len(binary)} column{'s' if len(binary) > 1 else ''} hold{'' if len(binary) > 1 else 's'} only 0/1{how}: a yes/no per label, any number per row",
                    "why_labels": "every 0/1 column, in the file's order"}  # fmt: skip
        if task == "multi_label":
            raise InitError(
                "--task multi_label: no column holds only 0/1; name the label columns with --labels A,B"
            )
    return _class_column(candidates)


def _given_labels(facts: dict[str, ColumnFacts], task: Task | None, labels: list[str]) -> dict:
    if task is None:
        task = "multi_label" if len(labels) > 1 or facts[labels[0]].binary else "multi_class"
    if task == "multi_class":
        if len(labels) != 1:
            raise InitError(
                f"--task multi_class takes one column of classes in --labels, got {', '.join(labels)}"
            )
        f = facts[labels[0]]
        if f.empty:
            raise InitError(
                f"column {f.name!r} is empty in {f.empty} row(s); every row needs its class (fix them, or pick another --labels)"
            )
        if f.distinct > MAX_CLASSES:
            raise InitError(
                f"column {f.name!r} has {f.distinct} distinct values, over {MAX_CLASSES} classes; pick another column with --labels"
            )
        return {"task": task, "columns": labels, "why_task": "--task / --labels: one column of classes",
                "why_labels": "the classes of --labels, sorted (their order fixes the class ids)"}  # fmt: skip
    for name in labels:
        f = facts[name]
        if f.zero_one != f.rows:
            raise InitError(f"column {name!r} holds values other than 0/1 ({f.other_example!r} in {f.rows - f.zero_one} row(s)); a multi-label "
                            f"column holds 0/1 only: fix those rows, leave it out of --labels, or use --task multi_class --labels {name}")  # fmt: skip
    return {"task": "multi_label", "columns": labels, "why_task": "--labels: 0/1 columns, a yes/no per label",
            "why_labels": "as given with --labels"}  # fmt: skip


def _class_column(candidates: dict[str, ColumnFacts]) -> dict:
    found = [f for f in candidates.values() if f.categorical]
    if len(found) > 1:
        named = [f for f in found if LABEL_NAME.search(f.name)]
        found = named if len(named) == 1 else found
    if not found:
        raise InitError(f"no label column found: no 0/1 columns and no column with 2-{MAX_CLASSES} distinct values in every row; "
                        "name the labels with --labels COLUMN (classes) or --labels A,B (0/1 columns)")  # fmt: skip
    if len(found) > 1:
        a, b = found[:2]
        raise InitError(f"label column: {a.name!r} ({a.distinct} values) and {b.name!r} ({b.distinct} values) could both hold the classes; "
                        f"choose one with --labels {a.name}")  # fmt: skip
    f = found[0]
    return {"task": "multi_class", "columns": [f.name],
            "why_task": f"no 0/1 columns; {f.name!r} holds {f.distinct} distinct values in every row: one class per row",
            "why_labels": "every value of the column, sorted (their order fixes the class ids)"}  # fmt: skip


def _text_column(
    facts: dict[str, ColumnFacts], given: str | None, labels: list[str]
) -> tuple[str, str]:
    if given:
        if given in labels:
            raise InitError(
                f"--text-column {given!r} is also a label column; choose another text column"
            )
        return given, f"--text-column ({facts[given].mean_chars:.0f} characters on average)"
    ranked = sorted((f for n, f in facts.items() if n not in labels and f.stringy and not f.categorical),
                    key=lambda f: (-f.mean_chars, f.name))  # fmt: skip
    if not ranked:
        raise InitError(
            "no text column found (a column of strings that is not a label); name it with --text-column COLUMN"
        )
    first = ranked[0]
    if len(ranked) > 1 and ranked[1].mean_chars >= CLOSE * first.mean_chars:
        second = ranked[1]
        raise InitError(f"text column: {first.name!r} ({first.mean_chars:.0f} characters on average) and {second.name!r} "
                        f"({second.mean_chars:.0f}) are close; choose one with --text-column {first.name}")  # fmt: skip
    runner_up = f"; next {ranked[1].name!r}, {ranked[1].mean_chars:.0f}" if len(ranked) > 1 else ""
    return (
        first.name,
        f"the string column with the longest texts ({first.mean_chars:.0f} characters on average{runner_up})",
    )


def agreement_suffix(
    facts: dict[str, ColumnFacts], labels: list[str], frame: pd.DataFrame
) -> str | None:
    """A suffix S such that every label L has a column L+S of shares in [0, 1] (UCC's
    ":confidence", the annotators' agreement), else None."""
    first = labels[0]
    for name in facts:
        if not name.startswith(first) or name == first:
            continue
        suffix = name[len(first) :]
        columns = [f"{label}{suffix}" for label in labels]
        if all(c in facts and facts[c].numeric and not facts[c].empty for c in columns) and all(
            pd.to_numeric(frame[c].str.strip()).between(0, 1).all() for c in columns
        ):
            return suffix
    return None
