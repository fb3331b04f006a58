"""The data profile (trainers.profile.DataProfile) as report tables: the study report, the
study's dashboard note and `hpo check --profile` all print these."""

from __future__ import annotations

import pandas as pd

from hpo.report.summary import Table
from trainers.profile import DataProfile

LEVELS = ("exact", "normalised", "loose")
LEVEL_NOTE = "normalised: case and white space ignored; loose: punctuation too"


def profile_tables(profile: DataProfile, *, baseline: bool = True) -> list[Table]:
    """Rows and duplicates per split, label shares, co-occurrence, token lengths, texts shared
    between splits, and (unless the caller shows its own) the all-majority baseline."""
    tables = [
        Table(
            "data_rows",
            f"Data: rows, empty and duplicated texts per split ({LEVEL_NOTE})",
            rows_table(profile),
        ),
        Table("data_labels", "Data: each label's count and share per split", label_table(profile)),
    ]
    if profile.cooccurrence is not None:
        tables.append(Table("data_cooccurrence", "Data: label co-occurrence, all splits (rows carrying both; diagonal: the label)",
                            cooccurrence_table(profile)))  # fmt: skip
    tables += [
        Table(
            "data_token_lengths",
            f"Data: token lengths with the study's tokenizer (truncated: over max_length {profile.max_length})",
            lengths_table(profile),
        ),  # fmt: skip
        Table(
            "data_cross_split",
            f"Data: texts found in two splits (shared texts; rows of the second split holding one; {LEVEL_NOTE})",
            cross_split_table(profile),
        ),  # fmt: skip
    ]
    if profile.shared_examples:
        tables.append(Table("data_shared_texts", "Data: texts in more than one split (the strictest level at which they match)",
                            shared_table(profile)))  # fmt: skip
    if baseline and profile.baseline_val:
        tables.append(
            Table(
                "data_baseline_val",
                "Data: all-majority baseline on validation",
                baseline_table(profile),
            )
        )
    return tables


def rows_table(profile: DataProfile) -> pd.DataFrame:
    rows = [{"split": d.split, "rows": d.rows, "empty (dropped)": d.empty,
             **{f"duplicated {level}": getattr(d, f"duplicated_{level}") for level in LEVELS}} for d in profile.duplicates]  # fmt: skip
    return pd.DataFrame(rows)


def label_table(profile: DataProfile) -> pd.DataFrame:
    frame = pd.DataFrame([s.model_dump() for s in profile.label_shares])
    wide = frame.pivot(index="label", columns="split", values=["count", "share"]).reindex(
        profile.labels
    )
    splits = list(profile.rows)
    wide.columns = [f"{split} {what}" for what, split in wide.columns]
    wide = wide[[f"{s} {w}" for s in splits for w in ("count", "share")]].astype(
        {f"{s} count": int for s in splits}
    )
    return wide.reset_index()


def cooccurrence_table(profile: DataProfile) -> pd.DataFrame:
    index = pd.Index(profile.labels, name="label")
    return pd.DataFrame(
        profile.cooccurrence, index=index, columns=pd.Index(profile.labels, name="label")
    )


def lengths_table(profile: DataProfile) -> pd.DataFrame:
    return pd.DataFrame([s.model_dump() for s in profile.lengths]).rename(
        columns={"truncated_share": "truncated share"}
    )


def cross_split_table(profile: DataProfile) -> pd.DataFrame:
    rows = []
    for c in profile.cross_split:
        row = {"first": c.first, "second": c.second}
        row.update({f"shared {level}": getattr(c, f"shared_{level}") for level in LEVELS})
        row.update({f"rows of second {level}": getattr(c, f"rows_{level}") for level in LEVELS})
        rows.append(row)
    return pd.DataFrame(rows)


def shared_table(profile: DataProfile) -> pd.DataFrame:
    splits = list(profile.rows)
    return pd.DataFrame([{"text": s.text, "match": s.level, **{split: s.counts.get(split, 0) for split in splits}}
                         for s in profile.shared_examples])  # fmt: skip


def baseline_table(profile: DataProfile) -> pd.DataFrame:
    return pd.DataFrame(
        list(profile.baseline_val.items()), columns=["metric", "all-majority baseline"]
    )


def profile_markdown(profile: DataProfile) -> str:
    """Every profile table as Markdown (the study note, `hpo check --profile`)."""
    from hpo.report.render import markdown_table

    return "\n\n".join(
        f"#### {t.title}\n\n{markdown_table(t.frame)}" for t in profile_tables(profile)
    )
