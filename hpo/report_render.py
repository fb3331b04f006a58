"""Render study summaries (hpo.report) as Markdown, one self-contained HTML page and CSV files.

The HTML page inlines plotly.js once, so it opens offline, from a file, on any machine.
"""

from __future__ import annotations

import html
import json
import math
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import precision_recall_curve, roc_curve

from hpo.report import StudySummary, majority_baseline, open_existing_study, summarize

Figure = tuple[str, go.Figure]
CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; }
.warn { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em 1em; }
.note { color: #666; }
"""


# ---- study report ---------------------------------------------------------------------------


def report_study(name: str, storage_url: str, data_dir: Path, runs_root: str | Path = "runs") -> Path:
    """Write runs/<study>/report/ from the study in storage. The data, when found, gives the
    all-majority baseline; runs/<study>/best/metrics.json, when there, the retrained model."""
    from storage import run_dir
    from trainers.errors import DataError

    study, spec = open_existing_study(name, storage_url)
    root = run_dir(name, runs_root)
    baseline, note = None, None
    try:
        baseline = majority_baseline(spec, data_dir)
    except DataError as e:
        note = f"no all-majority baseline: {e}"
    best_file = root / "best" / "metrics.json"
    best_metrics = json.loads(best_file.read_text()) if best_file.is_file() else None
    summary = summarize(study, spec, baseline, best_metrics)
    if note:
        summary.notes.append(note)
    link = str(best_file.parent / "report.html") if best_metrics else None
    return write_study_report(study, summary, root / "report", best_link=link)


def write_study_report(study: optuna.Study, summary: StudySummary, out_dir: str | Path, best_link: str | None = None) -> Path:
    """report.md, report.html and one CSV per table under `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key, table in summary.tables.items():
        table.to_csv(out / f"{key}.csv", index=_keeps_index(table))
    header = _study_header(study, summary)
    if best_link:
        header.append(f"Retrained best model: see {best_link}")
    (out / "report.md").write_text(_markdown(f"Study {summary.name}", header, summary))
    figures = study_figures(study, summary)
    (out / "report.html").write_text(_html(f"Study {summary.name}", header, summary, figures))
    return out / "report.html"


def _study_header(study: optuna.Study, summary: StudySummary) -> list[str]:
    spec = summary.spec
    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)]).value_counts()
    return [
        spec.description or "",
        f"Task {spec.task}; model {spec.model.name_or_path}; objective {spec.objective.metric} "
        f"({spec.objective.resolved_direction}) on validation.",
        "Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in states.items()) + ".",
    ]


def study_figures(study: optuna.Study, summary: StudySummary) -> list[Figure]:
    """Optuna's history, intermediate values, parallel coordinates and importances, the pivot
    heat-map and the training loss per epoch. A plot Optuna cannot draw yet is left out."""
    figures: list[Figure] = []
    plots = optuna.visualization
    for title, draw in (
        ("Optimisation history", plots.plot_optimization_history),
        ("Intermediate values (pruned trials stop early)", plots.plot_intermediate_values),
        ("Parallel coordinates", plots.plot_parallel_coordinate),
        ("Parameter importances", plots.plot_param_importances),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figures.append((title, draw(study)))
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            summary.notes.append(f"{title}: not drawn ({e})")
    pivots = [k for k in summary.tables if k.startswith("pivot_")]
    for key in pivots:
        figures.append((f"Objective heat-map: {_title(key)}", pivot_heatmap(summary.tables[key])))
    epochs = summary.tables.get("epochs")
    if epochs is not None and not epochs.empty:
        fig = px.line(epochs, x="epoch", y="train_loss", color=epochs["trial"].astype(str), markers=True,
                      hover_data=["batch_loss_cv", "state"], labels={"color": "trial"})  # fmt: skip
        figures.append(("Training loss per epoch", fig))
    return figures


def pivot_heatmap(pivot: pd.DataFrame) -> go.Figure:
    labels_x = [_fmt(c) for c in pivot.columns]
    labels_y = [_fmt(i) for i in pivot.index]
    fig = px.imshow(pivot.to_numpy(dtype=float), x=labels_x, y=labels_y, text_auto=".4f", aspect="auto",
                    color_continuous_scale="Viridis", labels={"x": pivot.columns.name, "y": pivot.index.name, "color": "objective"})  # fmt: skip
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    return fig


# ---- retrained best model ---------------------------------------------------------------------


def best_figures(task: str, y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None) -> list[Figure]:
    """Test-split plots of the retrained model."""
    if task == "multi_label":
        return [("Precision-recall curves on test (● at 0.5, ◆ at the tuned threshold)", pr_curves(y, probs, names, thresholds)),
                ("Confusion matrices on test at the tuned thresholds", label_confusions(y, probs, names, thresholds))]  # fmt: skip
    return [("Confusion matrix on test", class_confusion(y, probs, names)), ("ROC curves on test (one class vs rest)", roc_curves(y, probs, names))]


def pr_curves(y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None) -> go.Figure:
    fig = go.Figure()
    colors = px.colors.qualitative.Plotly
    for j, name in enumerate(names):
        if y[:, j].sum() == 0:
            continue
        color = colors[j % len(colors)]
        precision, recall, cut = precision_recall_curve(y[:, j], probs[:, j])
        fig.add_scatter(x=recall, y=precision, mode="lines", name=name, line={"color": color}, legendgroup=name)
        for t, symbol in ((0.5, "circle"), (None if thresholds is None else thresholds[j], "diamond")):
            if t is None:
                continue
            k = min(int(np.searchsorted(cut, t)), len(cut) - 1)
            fig.add_scatter(x=[recall[k]], y=[precision[k]], mode="markers", marker={"symbol": symbol, "size": 10, "color": color},
                            legendgroup=name, showlegend=False, hovertext=f"{name} at {t:.3f}")  # fmt: skip
    fig.update_layout(xaxis_title="recall", yaxis_title="precision", height=550)
    return fig


def label_confusions(y: np.ndarray, probs: np.ndarray, names: tuple[str, ...], thresholds: np.ndarray | None) -> go.Figure:
    cols = 4
    fig = make_subplots(rows=math.ceil(len(names) / cols), cols=cols, subplot_titles=names)
    pred = probs >= (0.5 if thresholds is None else thresholds)
    for j, _ in enumerate(names):
        t, p = y[:, j].astype(bool), pred[:, j]
        z = [[int((~t & ~p).sum()), int((~t & p).sum())], [int((t & ~p).sum()), int((t & p).sum())]]
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
    fig.update_layout(xaxis_title="false positive rate", yaxis_title="true positive rate", height=500)
    return fig


def write_best_report(out_dir: str | Path, title: str, header: list[str], summary: StudySummary, figures: list[Figure]) -> Path:
    """report.md, report.html and CSVs of the retrained model next to it."""
    out = Path(out_dir)
    for key, table in summary.tables.items():
        table.to_csv(out / f"{key}.csv", index=_keeps_index(table))
    (out / "report.md").write_text(_markdown(title, header, summary))
    (out / "report.html").write_text(_html(title, header, summary, figures))
    return out / "report.html"


# ---- formats ------------------------------------------------------------------------------


def _markdown(title: str, header: list[str], summary: StudySummary) -> str:
    parts = [f"# {title}", *[h for h in header if h]]
    parts += [f"> **Warning:** {w}" for w in summary.warnings]
    for key, table in summary.tables.items():
        parts += [f"## {_title(key)}", markdown_table(table)]
    parts += [f"_Note: {n}_" for n in summary.notes]
    return "\n\n".join(parts) + "\n"


def markdown_table(table: pd.DataFrame) -> str:
    frame = table.reset_index() if _keeps_index(table) else table
    if _keeps_index(table) and table.columns.name:
        frame = frame.rename(columns={frame.columns[0]: f"{table.index.name} \\ {table.columns.name}"})
    head = [str(_fmt(c)) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(_fmt(v)).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _html(title: str, header: list[str], summary: StudySummary, figures: list[Figure]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(h)}</p>" for h in header if h]]
    body += [f'<p class="warn">Warning: {html.escape(w)}</p>' for w in summary.warnings]
    for key, table in summary.tables.items():
        frame = table.map(_fmt).rename(index=_fmt, columns=_fmt)
        body += [f"<h2>{html.escape(_title(key))}</h2>", frame.to_html(escape=True, na_rep="", index=_keeps_index(table))]
    for i, (name, fig) in enumerate(figures):
        fig.update_layout(title=None, margin={"t": 30})
        body += [f"<h2>{html.escape(name)}</h2>", fig.to_html(full_html=False, include_plotlyjs=i == 0)]
    body += [f'<p class="note">Note: {html.escape(n)}</p>' for n in summary.notes]
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head><body>{"".join(body)}</body></html>'


TITLES = {
    "trials": "All trials (validation figures at the epoch each value comes from)",
    "param_importances": "Parameter importances (Optuna, complete trials)",
    "best_configuration": "Best configuration",
    "epochs": "Training loss per epoch, with the batch-loss coefficient of variation",
    "by_loss": "By loss type: complete trials' objective and the best trial's validation average precision",
    "baseline_val": "All-majority baseline on validation",
    "features": "With and without the hand-made features: objective of complete trials (last row: the differences; its std is the standard error of the difference of means)",
    "features_x_pooling": "Best objective of complete trials: features × pooling (without features, CLS pooling is the plain transformers head)",
}
BEST_TITLES = {  # hpo.report.best_model_tables; prefixed "best_" in the study report
    "test_before_after": "Test: at 0.5 and at the thresholds tuned on validation",
    "test_per_label": "Test, per label",
    "test_confusion": "Test: confusion counts",
    "test_metrics": "Test",
    "test_per_class": "Test, per class",
    "model_facts": "Size and speed",
}


def _title(key: str) -> str:
    if key in TITLES:
        return TITLES[key]
    if key in BEST_TITLES:
        return BEST_TITLES[key]
    if key.removeprefix("best_") in BEST_TITLES:
        return f"Retrained best model. {BEST_TITLES[key.removeprefix('best_')]}"
    if key.startswith("batch_size_"):
        return f"Batch size {key.removeprefix('batch_size_')}: one row per learning rate"
    if key.startswith("pivot_"):
        rows, columns = key.removeprefix("pivot_").split("_x_")
        return f"Best objective of complete trials: {rows} × {columns}"
    if key.startswith("objective_by_"):
        return f"Objective of complete trials by {key.removeprefix('objective_by_')}"
    return key.replace("_", " ").capitalize()


def _keeps_index(table: pd.DataFrame) -> bool:
    """Pivots and confusion matrices carry their meaning in the index; other tables do not."""
    return table.index.name is not None


def _fmt(v):
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        if math.isnan(v):
            return ""
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"
    return v
