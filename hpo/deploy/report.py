"""The deployment report, runs/<study>/deploy/report.md and .html: per variant its size,
parameters, CPU speed, and validation and test headline metrics with 95 % intervals; what pruning
removed and how the student was distilled; a quality-vs-speed plot; and the best trade-off by a
rule that reads validation only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pandas as pd
import plotly.graph_objects as go

from hpo.deploy.layout import Record, VariantFigures, VariantRecord
from hpo.deploy.measure import HEADLINE
from hpo.deploy.variants import FP32
from hpo.report.summary import StudySummary
from hpo.spec import StudySpec


class DeploySummary(Record):
    """Every variant's figures and the trade-off the rule chose (runs/<study>/deploy/summary.json)."""

    study: str
    task: str
    rule: str
    chosen: str
    figures: list[VariantFigures]
    records: list[VariantRecord]

    FILENAME: ClassVar[str] = "summary.json"


def choose(figures: list[VariantFigures], task: str, tolerance: float) -> tuple[str, str]:
    """The fastest variant at batch 64 whose validation headline metric is within `tolerance`
    of fp32's (fp32 itself qualifies, so there is always an answer); returns (name, rule)."""
    metric = HEADLINE[task][0]
    reference = next(f for f in figures if f.variant == FP32).val[metric] or 0.0
    eligible = [f for f in figures if (f.val[metric] or 0.0) >= reference - tolerance]
    best = max(eligible, key=lambda f: f.texts_per_s_batch64)
    rule = (f"the fastest variant (texts/s at batch 64) whose validation {metric} is at least fp32's minus {tolerance:g} "
            f"({reference:.4f} − {tolerance:g}); test scores play no part")  # fmt: skip
    return best.variant, rule


def variants_table(figures: list[VariantFigures], task: str) -> pd.DataFrame:
    base = next(f for f in figures if f.variant == FP32)
    rows = []
    for f in figures:
        row = {
            "variant": f.variant, "size_mb": f.size_mb, "size_vs_fp32": f.size_mb / base.size_mb, "parameters": f.parameters,
            "texts_per_s_batch1": f.texts_per_s_batch1, "texts_per_s_batch64": f.texts_per_s_batch64,
            "speedup_batch64": f.texts_per_s_batch64 / base.texts_per_s_batch64,
            "latency_p50_ms": f.latency_p50_ms, "latency_p95_ms": f.latency_p95_ms,
        }  # fmt: skip
        for split, values, intervals in (
            ("val", f.val, f.val_intervals),
            ("test", f.test, f.test_intervals),
        ):
            for metric in HEADLINE[task]:
                row[f"{split}_{metric}"] = values[metric]
                row[f"{split}_{metric}_95ci"] = _ci(intervals.get(metric))
        rows.append(row)
    return pd.DataFrame(rows)


def details_table(record: VariantRecord) -> pd.DataFrame:
    flat = _flatten(record.details)
    return pd.DataFrame(list(flat.items()), columns=["setting", "value"], dtype=object)


def quality_vs_speed(figures: list[VariantFigures], task: str, chosen: str) -> go.Figure:
    metric = HEADLINE[task][0]
    fig = go.Figure()
    for split, symbol in (("val", "circle"), ("test", "diamond-open")):
        values = [getattr(f, split)[metric] for f in figures]
        intervals = [getattr(f, f"{split}_intervals").get(metric) or [None, None] for f in figures]
        upper = [
            (hi - v) if hi is not None and v is not None else 0
            for v, (_, hi) in zip(values, intervals, strict=True)
        ]
        lower = [
            (v - lo) if lo is not None and v is not None else 0
            for v, (lo, _) in zip(values, intervals, strict=True)
        ]
        fig.add_scatter(x=[f.texts_per_s_batch64 for f in figures], y=values, mode="markers+text", name=f"{split} (95 % interval)",
                        text=[f"{f.variant}{' ★' if f.variant == chosen else ''}" if split == "val" else "" for f in figures],
                        textposition="top center", marker={"symbol": symbol, "size": 11},
                        error_y={"type": "data", "array": upper, "arrayminus": lower, "visible": True},
                        hovertext=[f"{f.variant}: {f.size_mb:.1f} MB, p50 {f.latency_p50_ms:.1f} ms" for f in figures])  # fmt: skip
    fig.update_layout(
        xaxis_title="CPU texts/s at batch 64 (length-sorted)", yaxis_title=metric, height=520
    )
    return fig


def write_deploy_report(
    out_dir: Path, spec: StudySpec, summary: DeploySummary, source_note: str
) -> Path:
    from hpo.report.render import write_best_report

    report = StudySummary(name=spec.name, spec=spec)
    report.add("variants", "Variants: size, speed on CPU, validation and test headline metrics (95 % bootstrap intervals)",
               variants_table(summary.figures, summary.task))  # fmt: skip
    for record in summary.records:
        report.add(
            f"details_{record.variant}", f"How {record.variant} was made", details_table(record)
        )
    header = _header(summary, source_note)
    figures = [
        (
            "Quality vs speed (★: the trade-off chosen on validation)",
            quality_vs_speed(summary.figures, summary.task, summary.chosen),
        )
    ]
    summary.write(out_dir)
    return write_best_report(out_dir, f"{spec.name}: deployment variants", header, report, figures)


def _header(summary: DeploySummary, source_note: str) -> list[str]:
    metrics = " and ".join(HEADLINE[summary.task])
    return [
        source_note,
        f"Best trade-off: **{summary.chosen}**, by the rule: {summary.rule}.",
        f"Headline metrics: {metrics}. Each variant's thresholds were re-tuned on validation (bagged best-F1), so its validation F1 "
        "is optimistic; test was scored once per variant, after its thresholds were fixed."
        if summary.task == "multi_label"
        else f"Headline metrics: {metrics}; test was scored once per variant.",
        "Speed: CPU wall-clock on the validation texts, tokenising included; batch 64 in length-sorted, dynamically padded batches "
        "(best of 3 passes); batch 1 and the p50/p95 latency from single texts, one call each. Size: weight files on disk "
        "(safetensors or ONNX) and the hand-made features' state, tokenizer excluded.",
    ]


def _flatten(values: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def _ci(interval: list[float | None] | None) -> str:
    if not interval or any(x is None for x in interval):
        return ""
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def read_summary(deploy_dir: Path) -> DeploySummary | None:
    return DeploySummary.read(Path(deploy_dir))
