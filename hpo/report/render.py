"""Write reports (hpo.report.summary) as Markdown, one self-contained HTML page and CSV files.

The HTML page inlines plotly.js once, so it opens offline, from a file, on any machine.
"""

from __future__ import annotations

import html
from pathlib import Path

import optuna
import pandas as pd

from hpo.report.baseline import majority_baseline
from hpo.report.figures import Figure, fmt, study_figures
from hpo.report.read import changed_data, open_existing_study
from hpo.report.summary import StudySummary
from hpo.report.tables import summarize
from hpo.spec import StudySpec
from hpo.stored import BestMetrics, read_profile

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; display: block; overflow-x: auto; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f2f2f2; }
.warn { background: #fff3cd; border: 1px solid #e0c060; padding: 0.5em 1em; }
.note { color: #666; }
"""


def report_study(
    name: str, storage_url: str, data_dir: Path, runs_root: str | Path = "runs"
) -> Path:
    """Write runs/<study>/report/ from the study in storage (see `write_report`)."""
    study, spec = open_existing_study(name, storage_url)
    return write_report(study, spec, data_dir, runs_root)


def write_report(
    study: optuna.Study, spec: StudySpec, data_dir: Path, runs_root: str | Path = "runs"
) -> Path:
    """Write runs/<study>/report/ for an open study and the spec it stored. The data, when found,
    gives the all-majority baseline; runs/<study>/best/metrics.json, when there, the retrained
    model."""
    from storage import run_dir
    from trainers.errors import DataError

    root = run_dir(study.study_name, runs_root)
    baseline, note = None, None
    changed = changed_data(study, spec, data_dir)
    try:
        if changed:
            note = f"no all-majority baseline: the data at hand is not the study's ({'; '.join(changed)})"
        else:
            baseline = majority_baseline(spec, data_dir)
    except DataError as e:
        profile = read_profile(study.user_attrs)
        baseline = (
            profile.baseline_val if profile and profile.baseline_val else None
        )  # as computed before the first trial
        note = None if baseline else f"no all-majority baseline: {e}"
    best_metrics = BestMetrics.read(root / "best")
    summary = summarize(study, spec, baseline, best_metrics)
    if note:
        summary.notes.append(note)
    link = str(root / "best" / "report.html") if best_metrics else None
    return write_study_report(study, summary, root / "report", best_link=link)


def write_study_report(
    study: optuna.Study, summary: StudySummary, out_dir: str | Path, best_link: str | None = None
) -> Path:
    """report.md, report.html and one CSV per table under `out_dir`; returns the HTML path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for table in summary.tables:
        table.frame.to_csv(out / f"{table.key}.csv", index=_keeps_index(table.frame))
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
        f"Task {spec.task}; model {spec.model.name_or_path}; "
        + (
            "objectives "
            + ", ".join(f"{o.metric} ({o.resolved_direction})" for o in spec.all_objectives)
            + " (a Pareto front)"
            if spec.multi_objective
            else f"objective {spec.objective.metric} ({spec.objective.resolved_direction}) on validation"
        )
        + ".",
        "Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in states.items()) + ".",
    ]


def write_best_report(
    out_dir: str | Path,
    title: str,
    header: list[str],
    summary: StudySummary,
    figures: list[Figure],
) -> Path:
    """report.md, report.html and CSVs of the retrained model next to it."""
    out = Path(out_dir)
    for table in summary.tables:
        table.frame.to_csv(out / f"{table.key}.csv", index=_keeps_index(table.frame))
    (out / "report.md").write_text(_markdown(title, header, summary))
    (out / "report.html").write_text(_html(title, header, summary, figures))
    return out / "report.html"


def _markdown(title: str, header: list[str], summary: StudySummary) -> str:
    parts = [f"# {title}", *[h for h in header if h]]
    parts += [f"> **Warning:** {w}" for w in summary.warnings]
    for table in summary.tables:
        parts += [f"## {table.title}", markdown_table(table.frame)]
    parts += [f"_Note: {n}_" for n in summary.notes]
    return "\n\n".join(parts) + "\n"


def markdown_table(table: pd.DataFrame) -> str:
    frame = table.reset_index() if _keeps_index(table) else table
    if _keeps_index(table) and table.columns.name:
        frame = frame.rename(
            columns={frame.columns[0]: f"{table.index.name} \\ {table.columns.name}"}
        )
    head = [str(fmt(c)) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(str(fmt(v)).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def _html(title: str, header: list[str], summary: StudySummary, figures: list[Figure]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>", *[f"<p>{html.escape(h)}</p>" for h in header if h]]
    body += [f'<p class="warn">Warning: {html.escape(w)}</p>' for w in summary.warnings]
    for table in summary.tables:
        frame = table.frame.map(fmt).rename(index=fmt, columns=fmt)
        body += [
            f"<h2>{html.escape(table.title)}</h2>",
            frame.to_html(escape=True, na_rep="", index=_keeps_index(table.frame)),
        ]
    for i, (name, fig) in enumerate(figures):
        fig.update_layout(title=None, margin={"t": 30})
        body += [
            f"<h2>{html.escape(name)}</h2>",
            fig.to_html(full_html=False, include_plotlyjs=i == 0),
        ]
    body += [f'<p class="note">Note: {html.escape(n)}</p>' for n in summary.notes]
    return f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{CSS}</style></head><body>{"".join(body)}</body></html>'


def _keeps_index(table: pd.DataFrame) -> bool:
    """Pivots and confusion matrices carry their meaning in the index; other tables do not."""
    return table.index.name is not None
