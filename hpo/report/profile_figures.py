"""Plots of the data profile for the study report: label shares per split, label
co-occurrence, token-length histograms, and duplicated texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from hpo.report.profile_tables import LEVELS, cross_split_table
from trainers.profile import DataProfile

Figure = tuple[str, go.Figure]


def profile_figures(profile: DataProfile) -> list[Figure]:
    figures = [("Data: each label's share per split", label_shares(profile))]
    if profile.cooccurrence is not None:
        figures.append(
            (
                "Data: label co-occurrence (rows carrying both labels, all splits)",
                cooccurrence(profile),
            )
        )
    figures += [
        (
            f"Data: token lengths per split (dashed: max_length {profile.max_length})",
            length_histogram(profile),
        ),
        ("Data: token lengths per label (p50, p90, p99, max)", length_percentiles(profile)),
    ]
    if any(getattr(c, f"shared_{level}") for c in profile.cross_split for level in LEVELS):
        figures.append(("Data: texts shared between splits", shared_texts(profile)))
    return figures


def label_shares(profile: DataProfile) -> go.Figure:
    frame = pd.DataFrame([s.model_dump() for s in profile.label_shares])
    fig = px.bar(frame, x="label", y="share", color="split", barmode="group", hover_data=["count"],
                 category_orders={"label": profile.labels, "split": list(profile.rows)})  # fmt: skip
    fig.update_yaxes(tickformat=".0%")
    return fig


def cooccurrence(profile: DataProfile) -> go.Figure:
    z = np.asarray(profile.cooccurrence)
    return px.imshow(z, x=profile.labels, y=profile.labels, text_auto=True, color_continuous_scale="Blues",
                     labels={"color": "rows"}, aspect="auto")  # fmt: skip


def length_histogram(profile: DataProfile) -> go.Figure:
    edges = np.asarray(profile.length_edges)
    fig = go.Figure()
    for split, counts in profile.length_counts.items():
        fig.add_bar(
            x=edges[:-1], y=counts, name=split, width=np.diff(edges), offset=0, opacity=0.6
        )
    fig.add_vline(x=profile.max_length, line_dash="dash")
    fig.update_layout(barmode="overlay", xaxis_title="tokens", yaxis_title="texts")
    return fig


def length_percentiles(profile: DataProfile) -> go.Figure:
    frame = pd.DataFrame([s.model_dump() for s in profile.lengths])
    long = frame.melt(
        id_vars=["group"],
        value_vars=["p50", "p90", "p99", "max"],
        var_name="statistic",
        value_name="tokens",
    )
    fig = px.bar(long, x="group", y="tokens", color="statistic", barmode="group")
    fig.add_hline(y=profile.max_length, line_dash="dash")
    return fig


def shared_texts(profile: DataProfile) -> go.Figure:
    frame = cross_split_table(profile)
    frame["splits"] = frame["first"] + " & " + frame["second"]
    long = frame.melt(
        id_vars=["splits"],
        value_vars=[f"shared {level}" for level in LEVELS],
        var_name="match",
        value_name="texts",
    )
    return px.bar(long, x="splits", y="texts", color="match", barmode="group")
