"""Test tables of the retrained best model, from its metrics.json (hpo.stored.BestMetrics)."""

from __future__ import annotations

import pandas as pd

from hpo.report.read import finite
from hpo.report.summary import Table
from hpo.stored import BestMetrics

ML_HEADLINE = (
    "micro_precision",
    "micro_recall",
    "micro_f1",
    "macro_precision",
    "macro_recall",
    "macro_f1",
    "subset_accuracy",
)
MC_HEADLINE = (
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "macro_precision",
    "macro_recall",
    "weighted_precision",
    "weighted_recall",
    "macro_roc_auc",
    "macro_ap",
)


def best_model_tables(m: BestMetrics) -> list[Table]:
    """The retrained model's test tables, then its size and speed."""
    tables = _multi_label_tables(m) if m.task == "multi_label" else _multi_class_tables(m)
    return [*tables, Table("model_facts", "Size and speed", _model_facts(m))]


def _multi_label_tables(m: BestMetrics) -> list[Table]:
    default, tuned, ci = m.test.default, m.test.tuned or {}, m.test.intervals
    rows = []
    for key in ML_HEADLINE:
        rows.append({"metric": key, "at 0.5": default[key], "95% CI at 0.5": _ci(ci.get(f"default.{key}")),
                     "tuned thresholds": tuned[key], "95% CI tuned": _ci(ci.get(f"tuned.{key}"))})  # fmt: skip
    for key in ("micro_roc_auc", "macro_roc_auc"):  # threshold-free
        rows.append({"metric": key, "at 0.5": default[key], "95% CI at 0.5": _ci(ci.get(key)),
                     "tuned thresholds": tuned[key], "95% CI tuned": _ci(ci.get(key))})  # fmt: skip
    thresholds = m.thresholds or {}
    per_label = []
    for name in m.labels:
        d, t = default["per_label"][name], tuned["per_label"][name]
        per_label.append({
            "label": name, "threshold": thresholds.get(name), "support": d["support"], "average_precision": d["ap"],
            "roc_auc": d["roc_auc"], "f1 at 0.5": d["f1"], "f1 tuned": t["f1"], "predicted at 0.5": d["predicted_positive"],
            "predicted tuned": t["predicted_positive"],
        })  # fmt: skip
    confusion = [
        {
            "label": name,
            "thresholds": tag,
            "tn": c[0][0],
            "fp": c[0][1],
            "fn": c[1][0],
            "tp": c[1][1],
        }
        for tag, scores in (("0.5", default), ("tuned", tuned))
        for name in m.labels
        for c in [scores["per_label"][name]["confusion"]]
    ]
    return [
        Table(
            "test_before_after",
            "Test: at 0.5 and at the thresholds tuned on validation",
            pd.DataFrame(rows),
        ),
        Table("test_per_label", "Test, per label", pd.DataFrame(per_label)),
        Table("test_confusion", "Test: confusion counts", pd.DataFrame(confusion)),
    ]


def _multi_class_tables(m: BestMetrics) -> list[Table]:
    test, ci = m.test.default, m.test.intervals
    headline = pd.DataFrame(
        [{"metric": k, "test": test[k], "95% CI": _ci(ci.get(k))} for k in MC_HEADLINE]
    )
    per_class = pd.DataFrame(
        [
            {
                "class": n,
                **{
                    k: v[k]
                    for k in (
                        "precision",
                        "recall",
                        "f1",
                        "roc_auc",
                        "support",
                        "predicted_positive",
                    )
                },
            }
            for n, v in test["per_label"].items()
        ]  # fmt: skip
    )
    confusion = pd.DataFrame(
        test["confusion"], index=pd.Index(m.labels, name="true"), columns=m.labels
    )
    return [
        Table("test_metrics", "Test", headline),
        Table("test_per_class", "Test, per class", per_class),
        Table("test_confusion", "Test: confusion counts", confusion),
    ]


def _model_facts(m: BestMetrics) -> pd.DataFrame:
    facts = {"trial": m.trial, "epochs": m.epochs, "n_test": m.n_test, "model_size_mb": m.model_size_mb,
             "texts_per_s": m.texts_per_s, "seconds_per_1000_texts": m.seconds_per_1000_texts}  # fmt: skip
    return pd.DataFrame(list(facts.items()), columns=["fact", "value"], dtype=object)


def _ci(interval: list[float | None] | None) -> str:
    return (
        f"[{interval[0]:.4f}, {interval[1]:.4f}]"
        if interval and all(finite(x) for x in interval)
        else ""
    )
