"""The report's plots (plotly): Optuna's own study plots, the pivot's heat-map, the training
loss per epoch, and the retrained model's test curves and confusion matrices."""

from __future__ import annotations

import math
import warnings

import numpy as np
import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import precision_recall_curve, roc_curve

from hpo.objectives import is_multi_objective, primary_value
from hpo.report.summary import StudySummary

Figure = tuple[str, go.Figure]


def study_figures(study: optuna.Study, summary: StudySummary) -> list[Figure]:
    """Optuna's history, intermediate values, parallel coordinates and importances, the pivot
    heat-map and the training loss per epoch. A plot Optuna cannot draw yet is left out."""
    figures: list[Figure] = []
    plots = optuna.visualization
    single = per_objective_plots(plots)
    if is_multi_objective(study):
        names = [o.metric for o in summary.spec.all_objectives]
        first = {"target": primary_value, "target_name": names[0]}
        draws = [
            (
                f"Pareto front ({' vs '.join(names)})",
                lambda s: plots.plot_pareto_front(s, target_names=names),
            )
        ]
        draws += [
            (f"{title} of {names[0]}", lambda s, d=draw: d(s, **first)) for title, draw in single
        ]
    else:  # intermediate values exist only where trials report per epoch, i.e. with one objective
        draws = [
            single[0],
            ("Intermediate values (pruned trials stop early)", plots.plot_intermediate_values),
            *single[1:],
        ]
    for title, draw in draws:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figures.append((title, draw(study)))
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            summary.notes.append(f"{title}: not drawn ({e})")
    for table in summary.tables:
        if table.pivot:
            figures.append((f"Objective heat-map: {table.title}", pivot_heatmap(table.frame)))
    epochs = summary.table("epochs")
    if epochs is not None and not epochs.empty:
        fig = px.line(epochs, x="epoch", y="train_loss", color=epochs["trial"].astype(str), markers=True,
                      hover_data=["batch_loss_cv", "state"], labels={"color": "trial"})  # fmt: skip
        figures.append(("Training loss per epoch", fig))
    return figures + _profile_figures(study)


def _profile_figures(study: optuna.Study) -> list[Figure]:
    from hpo.report.profile_figures import profile_figures
    from hpo.stored import read_profile

    profile = read_profile(study.user_attrs)
    return profile_figures(profile) if profile is not None else []


def per_objective_plots(plots) -> list[tuple[str, object]]:
    """Optuna's plots of one objective (in a multi-objective study: given its `target`)."""
    return [("Optimisation history", plots.plot_optimization_history), ("Parallel coordinates", plots.plot_parallel_coordinate),
            ("Parameter importances", plots.plot_param_importances)]  # fmt: skip


def pivot_heatmap(pivot: pd.DataFrame) -> go.Figure:
    labels_x = [fmt(c) for c in pivot.columns]
    labels_y = [fmt(i) for i in pivot.index]
    fig = px.imshow(pivot.to_numpy(dtype=float), x=labels_x, y=labels_y, text_auto=".4f", aspect="auto",
                    color_continuous_scale="Viridis", labels={"x": pivot.columns.name, "y": pivot.index.name, "color": "objective"})  # fmt: skip
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


def best_figures(
    task: str,
    y: np.ndarray,
    probs: np.ndarray,
    names: tuple[str, ...],
    thresholds: np.ndarray | None,
) -> list[Figure]:
    """Test-split plots of the retrained model."""
    if task == "multi_label":
        return [("Precision-recall curves on test (● at 0.5, ◆ at the tuned threshold)", pr_curves(y, probs, names, thresholds)),
                ("Confusion matrices on test at the tuned thresholds", label_confusions(y, probs, names, thresholds))]  # fmt: skip
    return [
        ("Confusion matrix on test", class_confusion(y, probs, names)),
        ("ROC curves on test (one class vs rest)", roc_curves(y, probs, names)),
    ]


def pr_curves(
    y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None
) -> go.Figure:
    fig = go.Figure()
    colors = px.colors.qualitative.Plotly
    for j, name in enumerate(names):
        if y[:, j].sum() == 0:
            continue
        color = colors[j % len(colors)]
        precision, recall, cut = precision_recall_curve(y[:, j], probs[:, j])
        fig.add_scatter(
            x=recall, y=precision, mode="lines", name=name, line={"color": color}, legendgroup=name
        )
        for t, symbol in (
            (0.5, "circle"),
            (None if thresholds is None else thresholds[j], "diamond"),
        ):
            if t is None:
                continue
            k = min(int(np.searchsorted(cut, t)), len(cut) - 1)
            fig.add_scatter(x=[recall[k]], y=[precision[k]], mode="markers", marker={"symbol": symbol, "size": 10, "color": color},
                            legendgroup=name, showlegend=False, hovertext=f"{name} at {t:.3f}")  # fmt: skip
    fig.update_layout(xaxis_title="recall", yaxis_title="precision", height=550)
    return fig


def label_confusions(
    y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None
) -> go.Figure:
    cols = 4
    fig = make_subplots(rows=math.ceil(len(names) / cols), cols=cols, subplot_titles=names)
    pred = probs >= (0.5 if thresholds is None else thresholds)
    for j, _ in enumerate(names):
        t, p = y[:, j].astype(bool), pred[:, j]
        z = [
            [int((~t & ~p).sum()), int((~t & p).sum())],
            [int((t & ~p).sum()), int((t & p).sum())],
        ]
        fig.add_trace(go.Heatmap(z=z, x=["pred 0", "pred 1"], y=["true 0", "true 1"], text=z, texttemplate="%{text}",
                                 colorscale="Blues", showscale=False), row=j // cols + 1, col=j % cols + 1)  # fmt: skip
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=260 * math.ceil(len(names) / cols))
    return fig


def class_confusion(y: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> go.Figure:
    n = len(names)
    z = np.zeros((n, n), dtype=int)
    np.add.at(z, (y, probs.argmax(axis=1)), 1)
    return px.imshow(z, x=list(names), y=list(names), text_auto=True, color_continuous_scale="Blues",
                     labels={"x": "predicted", "y": "true", "color": "texts"})  # fmt: skip


def roc_curves(y: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> go.Figure:
    fig = go.Figure()
    for j, name in enumerate(names):
        positive = (y == j).astype(int)
        if 0 < positive.sum() < len(y):
            fpr, tpr, _ = roc_curve(positive, probs[:, j])
            fig.add_scatter(x=fpr, y=tpr, mode="lines", name=name)
    fig.update_layout(
        xaxis_title="false positive rate", yaxis_title="true positive rate", height=500
    )
    return fig


def fmt(v):
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return v
