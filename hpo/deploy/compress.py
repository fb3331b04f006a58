"""`hpo compress NAME`: from runs/<study>/best/ to runs/<study>/deploy/, each variant built,
its thresholds re-tuned on validation, measured (validation, test once, CPU speed), and all of
them compared in the deployment report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hpo.deploy.layout import VariantFigures, VariantRecord, deploy_root, variant_dir
from hpo.deploy.settings import CompressSpec
from hpo.deploy.variants import FP32
from hpo.errors import HpoError
from hpo.spec import StudySpec

log = logging.getLogger(__name__)


def compress_study(
    spec: StudySpec,
    best_dir: Path,
    data_dir: Path,
    settings: CompressSpec | None = None,
    rebuild: bool = True,
) -> Path:
    """Build every variant in `settings.variants` (default: the spec's `compress:` section) and
    write the deployment report; returns the report's HTML path. `rebuild` False measures the
    variants already built (their thresholds kept) again: speeds on another or a quieter machine."""
    from hpo.deploy.build import build_variant
    from hpo.deploy.measure import Splits, measure_variant, tune_thresholds
    from hpo.deploy.report import DeploySummary, choose, write_deploy_report
    from hpo.deploy.runtime import load_predictor
    from hpo.deploy.support import Source
    from trainers.shrink import parameter_count

    settings = settings or spec.compress
    source = Source.open(spec, best_dir, data_dir)
    splits = Splits.load(source.config)
    fp32 = load_predictor(best_dir)
    figures = [
        measure_variant(
            FP32,
            fp32,
            best_dir,
            parameter_count(fp32.model),
            splits,
            settings.single_texts,
            settings.resamples,
        )
    ]
    _print(figures[-1])
    records: list[VariantRecord] = []
    for variant in settings.variants:
        start = time.perf_counter()
        target = variant_dir(best_dir, variant)
        if rebuild:
            print(f"{variant}: building {target}", flush=True)
            record = build_variant(variant, source, target, settings)
        else:
            record = _built(target, variant)
        predictor = load_predictor(target)
        if rebuild:
            tune_thresholds(predictor, splits, target)
        figure = measure_variant(
            variant,
            predictor,
            target,
            record.parameters,
            splits,
            settings.single_texts,
            settings.resamples,
        )
        figure.write(target)
        figures.append(figure)
        records.append(record)
        _print(figure, time.perf_counter() - start)
    chosen, rule = choose(figures, spec.task, settings.tolerance)
    summary = DeploySummary(
        study=spec.name, task=spec.task, rule=rule, chosen=chosen, figures=figures, records=records
    )
    note = (f"Variants of {best_dir} (trial {source.metrics.trial}, {spec.model.name_or_path}); "
            f"`hpo predict {best_dir} --variant NAME` or `hpo predict {deploy_root(best_dir)}/NAME` uses one.")  # fmt: skip
    return write_deploy_report(deploy_root(best_dir), spec, summary, note)


def _built(target: Path, variant: str) -> VariantRecord:
    record = VariantRecord.read(target)
    if record is None:
        raise HpoError(
            f"{target}: variant {variant!r} is not built; run `hpo compress` without --remeasure first"
        )
    return record


def _print(f: VariantFigures, seconds: float | None = None) -> None:
    scores = "  ".join(
        f"{split} {k}={v:.4f}"
        for split, values in (("val", f.val), ("test", f.test))
        for k, v in values.items()
        if v is not None
    )
    took = f"  ({seconds:.0f}s)" if seconds is not None else ""
    print(
        f"{f.variant}: {f.size_mb:.1f} MB, {f.texts_per_s_batch64:.0f} texts/s at batch 64, p50 {f.latency_p50_ms:.1f} ms  {scores}{took}",
        flush=True,
    )
