"""CPU inference of a retrained model and its deployment variants (`hpo compress`).

For each study given (default: ucc-minilm, and covid-minilm-small when built) and each of its
variants in runs/<study>/deploy/: texts/s at batch 64 on the whole test split (length-sorted,
dynamically padded, tokenising included) and the ratio to fp32 measured in the same run, p50/p95
latency of a single text, the test headline metric (UCC: macro ROC-AUC; COVID: accuracy) and
its difference to fp32 (the teacher of the distilled student), and the size on disk. Then
`hpo predict` end to end on the test file, as a user runs it (a new process: interpreter start,
imports, model load, prediction, CSV written): texts/s over the whole wall-clock time.

Targets (issue): onnx-int8 or int8 ≥ 2.5× fp32 at batch 64 within 0.005 test macro ROC-AUC;
`hpo predict` ≥ 400 texts/s end to end; distilled ≥ 1.8× fp32 within 0.015 of its teacher
(COVID: accuracy within 0.03); pruned ≥ 30 % smaller within 0.01.

    python -m benchmarks.inference [--quick] [--studies ucc-minilm,covid-minilm-small] [--runs runs]
        [--profile-ops onnx-int8]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STUDIES = ("ucc-minilm", "covid-minilm-small")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inference", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="500 test texts, 50 single-text calls, no `hpo predict` run",
    )
    parser.add_argument(
        "--studies",
        default=",".join(DEFAULT_STUDIES),
        help="comma-separated study names (skipped when not retrained)",
    )
    parser.add_argument(
        "--runs",
        default=str(REPO / "runs"),
        help="the runs/ folder holding <study>/best and <study>/deploy",
    )
    parser.add_argument(
        "--predict-variant",
        default="onnx-int8",
        help="a variant `hpo predict` is timed on, beside fp32 and the report's best trade-off (default onnx-int8)",
    )
    parser.add_argument(
        "--profile-ops",
        metavar="VARIANT",
        help="an ONNX variant (e.g. onnx-int8) whose kernel time per operator type is printed, from ONNX Runtime's profiler over 1,000 test texts",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), python {sys.version.split()[0]}",
        flush=True,
    )
    for name in args.studies.split(","):
        best = Path(args.runs) / name / "best"
        if not (best / "labels.json").is_file():
            print(
                f"{name}: skipped, no retrained model in {best} (hpo retrain {name}, then hpo compress {name})",
                flush=True,
            )
            continue
        bench_study(name, best, args)
    return 0


def bench_study(name: str, best: Path, args: argparse.Namespace) -> None:
    from hpo.deploy.layout import size_on_disk_mb
    from hpo.deploy.measure import HEADLINE, Splits, headline
    from hpo.deploy.runtime import load_predictor
    from hpo.deploy.support import Source
    from hpo.spec import default_data_dir, load_spec
    from trainers.speed import single_text_latencies, texts_per_second

    spec = load_spec(name)
    splits = Splits.load(Source.open(spec, best, default_data_dir()).config)
    n = 500 if args.quick else len(splits.test_texts)
    texts, labels = splits.test_texts[:n], splits.test_labels[:n]
    metric = HEADLINE[spec.task][0]
    variants = [
        ("fp32", best),
        *sorted(
            (p.name, p)
            for p in (best.parent / "deploy").glob("*")
            if (p / "variant.json").is_file()
        ),
    ]
    print(
        f"\n{name}: {n} test texts, {metric} on test; texts/s at batch 64 (length-sorted, tokenising included), best of 2 passes",
        flush=True,
    )
    print(
        f"{'variant':10s} {'texts/s@64':>10s} {'x fp32':>7s} {'p50 ms':>7s} {'p95 ms':>7s} {metric:>13s} {'Δ fp32':>8s} {'MB':>7s} {'MB vs fp32':>10s}"
    )
    base_speed = base_metric = base_size = None
    for variant, directory in variants:
        predictor = load_predictor(directory)
        speed = texts_per_second(predictor.probabilities, texts, 64, repeats=2)
        latencies = (
            single_text_latencies(
                predictor.probabilities, splits.val_texts[: 50 if args.quick else 200]
            )
            * 1000
        )
        value = headline(
            spec.task,
            labels,
            predictor.probabilities(texts),
            predictor.thresholds,
            splits.names,
            0,
        )[0][metric]
        size = size_on_disk_mb(directory)
        base_speed, base_metric, base_size = (
            base_speed or speed,
            base_metric if base_metric is not None else value,
            base_size or size,
        )
        print(f"{variant:10s} {speed:10.1f} {speed / base_speed:7.2f} {_pct(latencies, 50):7.1f} {_pct(latencies, 95):7.1f} "
              f"{value:13.4f} {value - base_metric:+8.4f} {size:7.1f} {size / base_size - 1:+10.1%}", flush=True)  # fmt: skip
        del predictor
    if args.profile_ops:
        profile_operators(best.parent / "deploy" / args.profile_ops, texts[:1000])
    if not args.quick:
        bench_predict(best, splits.test_texts, spec.data.text_column, args.predict_variant, spec)


def bench_predict(best: Path, texts: list[str], column: str, variant: str, spec) -> None:
    """`hpo predict` in a fresh process on a CSV of the test texts, for fp32, `variant` and the
    deployment report's best trade-off; wall-clock, interpreter start and model load included."""
    import pandas as pd

    from hpo.deploy.report import DeploySummary

    summary = DeploySummary.read(best.parent / "deploy")
    chosen_by_report = [summary.chosen] if summary and summary.chosen != "fp32" else []
    built = [
        v
        for v in dict.fromkeys([variant, *chosen_by_report])
        if (best.parent / "deploy" / v / "variant.json").is_file()
    ]
    targets = [("fp32", None), *((v, v) for v in built)]
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        source = Path(tmp) / "test.csv"
        pd.DataFrame({column: texts}).to_csv(source, index=False)
        for label, chosen in targets:
            out = Path(tmp) / f"{label}.csv"
            cmd = [
                sys.executable,
                "-m",
                "hpo",
                "predict",
                str(best),
                "--file",
                str(source),
                "--out",
                str(out),
            ]
            cmd += ["--variant", chosen] if chosen else []
            start = time.perf_counter()
            subprocess.run(
                cmd,
                check=True,
                cwd=REPO,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                capture_output=True,
            )
            seconds = time.perf_counter() - start
            rows = len(pd.read_csv(out))
            print(
                f"hpo predict --variant {label}: {rows} texts in {seconds:.1f} s end to end = {rows / seconds:.0f} texts/s",
                flush=True,
            )


def profile_operators(directory: Path, texts: list[str], top: int = 6) -> None:
    """Print each operator type's share of an ONNX variant's kernel time at batch 64: what
    quantising the weight matrices can shrink (the int8 MatMuls) against what it cannot
    (attention's core, normalisation, activations)."""
    from hpo.deploy.runtime import OnnxPredictor, load_predictor

    predictor = load_predictor(directory)
    if not isinstance(predictor, OnnxPredictor):
        print(f"--profile-ops: {directory} is not an ONNX variant; choose onnx, onnx-int8 or distilled-onnx-int8", flush=True)  # fmt: skip
        return
    by_op = predictor.kernel_seconds_by_operator(texts)
    total = sum(by_op.values())
    shares = ", ".join(f"{op} {s:.2f} s ({s / total:.0%})" for op, s in list(by_op.items())[:top])
    print(f"{directory.name} kernel time over {len(texts)} test texts, {total:.2f} s: {shares}", flush=True)  # fmt: skip


def _pct(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q))


if __name__ == "__main__":
    sys.exit(main())
