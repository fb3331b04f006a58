"""The commands that read a study that has run: its report, the best model retrained and tested
once, seed selection, every trial scored, deployment variants, and prediction."""

from __future__ import annotations

from pathlib import Path


def _stored_study(args):
    """The study `_study_args` name on its storage, the spec it stored when it started (variant
    applied; never today's file of that name) and the data folder: (url, study, spec, data_dir)."""
    from hpo.report import open_existing_study
    from hpo.spec import default_data_dir
    from storage import resolve_storage_url

    url = resolve_storage_url(args.storage)
    study, spec = open_existing_study(args.name, url)
    return url, study, spec, default_data_dir(args.data_dir)


def cmd_report(args) -> int:
    from hpo.dashboard.attach import attach_to_best_trial
    from hpo.report import write_report
    from storage import default_artifact_dir

    url, study, spec, data_dir = _stored_study(args)
    path = write_report(study, spec, data_dir)
    attach_to_best_trial(study, [path], default_artifact_dir(url))
    print(f"report: {path} (and report.md, one CSV per table, in {path.parent})")
    return 0


def cmd_retrain(args) -> int:
    from hpo import stored
    from hpo.best import retrain_best
    from hpo.dashboard.attach import attach_to_best_trial
    from storage import default_artifact_dir, run_dir

    url, study, spec, data_dir = _stored_study(args)
    out = run_dir(study.study_name) / "best"
    metrics = retrain_best(
        study,
        spec,
        data_dir,
        out,
        n_resamples=args.resamples,
        trial_number=args.trial,
        members_dir=members_dir(study),
    )
    attach_to_best_trial(study, [out / metrics.FILENAME], default_artifact_dir(url), metrics.trial)
    if study.user_attrs.get(stored.MLFLOW_RUNS):
        from hpo.tracking.mlflow_runs import log_retrained

        print(
            f"test figures logged to MLflow run(s) {', '.join(log_retrained(study, metrics, out))}"
        )
    d, tuned = metrics.test.default, metrics.test.tuned
    if tuned is not None:
        shown = f"macro F1 {d['macro_f1']:.4f} at 0.5, {tuned['macro_f1']:.4f} at tuned thresholds"
    else:
        shown = f"accuracy {d['accuracy']:.4f}, macro F1 {d['macro_f1']:.4f}"
    print(f"best model: {out}  test {shown}, macro ROC-AUC {d['macro_roc_auc']:.4f}")
    for warning in metrics.collapse:
        print(f"warning: {warning}")
    return 0


def members_dir(study) -> Path:
    """Where selection re-runs keep the models an ensemble is built from (hpo.best.members)."""
    from hpo.best.members import MEMBERS_DIR
    from storage import run_dir

    return run_dir(study.study_name) / MEMBERS_DIR


def print_selection(study, spec, data_dir: Path) -> None:
    from hpo.best.select import select, selection_lines

    candidates = select(study, spec, data_dir, members_root=members_dir(study))
    print("\n".join(selection_lines(candidates, spec.objective.metric)))
    print(
        f"selected trial {candidates[0].trial}; `hpo retrain {spec.name}` retrains it", flush=True
    )


def cmd_select(args) -> int:
    _, study, spec, data_dir = _stored_study(args)
    print_selection(study, spec, data_dir)
    return 0


def cmd_score_trials(args) -> int:
    from hpo.best import score_trials

    _, study, spec, data_dir = _stored_study(args)
    scored = score_trials(study, spec, data_dir)
    print(f"scored {len(scored)} trial(s) on test; `hpo report {spec.name}` shows them")
    return 0


def cmd_compress(args) -> int:
    from hpo.deploy.compress import compress_study
    from hpo.deploy.settings import settings_with
    from storage import run_dir

    _, study, spec, data_dir = _stored_study(args)
    variants = (
        [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    )
    settings = settings_with(
        spec.compress, variants, args.temperature, args.alpha, args.distill_epochs, args.resamples
    )
    path = compress_study(
        spec,
        run_dir(study.study_name) / "best",
        data_dir,
        settings,
        rebuild=not args.remeasure,
    )
    print(f"deployment report: {path} (and report.md, summary.json; variants in {path.parent})")
    return 0


def cmd_predict(args) -> int:
    from hpo.best import predict

    n = predict(
        args.model_dir, args.text, args.file, args.text_column, args.out, variant=args.variant
    )
    if args.out:
        print(f"labelled {n} text(s): {args.out}")
    return 0
