"""`hpo <command>`: the service's entry point (the Makefile's targets call it).

Every user-facing error is printed as one line and exits 2; no traceback for bad input.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from hpo.errors import HpoError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.command != "predict":  # prediction never touches a study: it starts without importing Optuna
        import optuna  # configures its own logger on import: quiet it after, not before

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the runner prints one line per trial itself
    _sigterm_as_interrupt()
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted: the running trial was stopped and marked FAIL; finished trials are kept", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        if _is_user_error(e):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise


def _is_user_error(e: Exception) -> bool:
    from storage import StorageError
    from trainers.errors import TrainerError

    return isinstance(e, (HpoError, StorageError, TrainerError))


def _sigterm_as_interrupt() -> None:
    """SIGTERM ends the current trial cleanly (FAIL, its process stopped), like Ctrl-C."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpo", description="Optuna studies of transformer fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)

    study = sub.add_parser("study", help="create or resume a study and run it to n_trials")
    _common(study)
    study.add_argument("--n-trials", type=int, help="override the spec's n_trials")
    _heartbeat(study)
    study.add_argument("--join", action="store_true", help="join a study `hpo workers` created: skip the data check")
    study.set_defaults(func=cmd_study)

    workers = sub.add_parser("workers", help="run a study with several worker processes (one per GPU with --gpus)")
    _common(workers)
    workers.add_argument("-n", "--n-workers", type=int, help="how many workers (default: one per --gpus device)")
    workers.add_argument("--gpus", help="comma-separated CUDA devices, e.g. 0,1: worker i runs on device i (round-robin)")
    workers.add_argument("--n-trials", type=int, help="override the spec's n_trials")
    _heartbeat(workers)
    workers.set_defaults(func=cmd_workers)

    check = sub.add_parser("check", help="validate a spec, its data and its model; run nothing")
    _common(check)
    check.set_defaults(func=cmd_check)

    dash = sub.add_parser("dashboard", help="serve optuna-dashboard on the study storage, with the trials' artifacts")
    _storage(dash)
    dash.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    dash.add_argument("--port", type=int, default=8080)
    dash.add_argument("--artifact-dir", help="artifact store (default: next to a SQLite file, else $HPO_ARTIFACT_DIR or runs/artifacts)")
    dash.set_defaults(func=cmd_dashboard)
    _add_result_commands(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="study name (studies/<name>.yaml) or a path to a spec")
    p.add_argument("--data-dir", help="folder holding the data sets (default: $DATA_DIR or data/)")
    _storage(p)
    p.add_argument("--variant", help="run one of the spec's named variants (study <name>-<variant>)")


def _storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", help="storage URL (default: $HPO_STORAGE or sqlite:///runs/optuna.db)")


def _heartbeat(p: argparse.ArgumentParser) -> None:
    default = int(os.environ.get("HPO_HEARTBEAT_INTERVAL") or 60)
    p.add_argument(
        "--heartbeat", type=int, default=default, metavar="SECONDS",
        help=f"heartbeat interval; a trial silent for twice this is failed and retried (default: $HPO_HEARTBEAT_INTERVAL or 60, now {default})",
    )


def _load(args):
    from hpo.spec import default_data_dir, load_spec, resolve_spec_path

    spec = load_spec(args.name, getattr(args, "variant", None))
    if getattr(args, "n_trials", None):
        spec = spec.model_copy(update={"n_trials": args.n_trials})
    return spec, resolve_spec_path(args.name), default_data_dir(args.data_dir)


def cmd_check(args) -> int:
    from hpo.study import preflight

    spec, path, data_dir = _load(args)
    facts = preflight(spec, data_dir)
    print(f"{path}: ok  ({', '.join(f'n_{split}={n}' for split, n in facts.rows.items())})")
    return 0


def cmd_study(args) -> int:
    from hpo.study import check_same_spec, describe_study, n_finished, open_study, preflight, print_best, run_study
    from storage import default_artifact_dir, redact, resolve_storage_url

    spec, path, data_dir = _load(args)
    url = resolve_storage_url(args.storage)
    facts = None if args.join else preflight(spec, data_dir)  # `hpo workers` checked the data once
    study = open_study(spec, url, heartbeat_interval=args.heartbeat)
    check_same_spec(study, spec, url)
    if facts is not None:
        describe_study(study, spec, Path(path).read_text(), facts)
    print(
        f"study {spec.name} on {redact(url)}: {n_finished(study)}/{spec.n_trials} trials finished; "
        f"objective {spec.objective.metric}; data {data_dir}",
        flush=True,
    )
    start = time.perf_counter()
    run_study(spec, study, data_dir, artifact_dir=default_artifact_dir(url))
    print(f"study {spec.name}: {n_finished(study)} finished trials, {time.perf_counter() - start:.0f}s this run", flush=True)
    print_best(study)
    return 0


def cmd_workers(args) -> int:
    from hpo.study import check_same_spec, describe_study, n_finished, open_study, preflight, print_best
    from hpo.study.workers import start_workers, wait_workers, worker_envs
    from storage import redact, resolve_storage_url

    spec, path, data_dir = _load(args)
    url = resolve_storage_url(args.storage)
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    n = args.n_workers or (len(gpus) if gpus else 0)
    if n < 1:
        raise HpoError("hpo workers: give the number of workers with -n K (or devices with --gpus 0,1)")
    facts = preflight(spec, data_dir)
    study = open_study(spec, url, heartbeat_interval=args.heartbeat)  # created once, here: workers only load it
    check_same_spec(study, spec, url)
    describe_study(study, spec, Path(path).read_text(), facts)
    envs = worker_envs(n, gpus)
    placement = ", ".join(f"{e['HPO_WORKER']}→GPU {e['CUDA_VISIBLE_DEVICES']}" for e in envs) if gpus else f"{envs[0]['OMP_NUM_THREADS']} CPU threads each"
    print(f"study {spec.name} on {redact(url)}: {n_finished(study)}/{spec.n_trials} trials finished; {n} workers ({placement})", flush=True)
    start = time.perf_counter()
    procs = start_workers(path, envs, storage=args.storage, data_dir=data_dir, heartbeat=args.heartbeat, n_trials=args.n_trials)
    code = wait_workers(procs)
    print(f"study {spec.name}: {n_finished(study)} finished trials, {time.perf_counter() - start:.0f}s this run", flush=True)
    print_best(study)
    return code


def cmd_dashboard(args) -> int:
    from hpo.dashboard import serve
    from storage import default_artifact_dir, resolve_storage_url

    url = resolve_storage_url(args.storage)
    serve(url, args.host, args.port, Path(args.artifact_dir) if args.artifact_dir else default_artifact_dir(url))
    return 0


def _add_result_commands(sub) -> None:
    """report, retrain, score-trials, predict: what a finished study gives back."""
    report = sub.add_parser("report", help="write runs/<study>/report/: tables (md, csv) and plots (html)")
    _study_args(report)
    report.set_defaults(func=cmd_report)

    retrain = sub.add_parser("retrain", help="retrain the best trial, tune thresholds on val, test once; write runs/<study>/best/")
    _study_args(retrain)
    retrain.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples for the test intervals (default 1000)")
    retrain.add_argument("--trial", type=int, help="retrain this complete trial (default: the best; multi-objective: the Pareto trial with the best first objective)")
    retrain.set_defaults(func=cmd_retrain)

    score = sub.add_parser("score-trials", help="retrain every complete trial and keep its test scores (never used for selection)")
    _study_args(score)
    score.set_defaults(func=cmd_score_trials)

    _add_compress(sub)

    predict = sub.add_parser("predict", help="label texts with a retrained model (runs/<study>/best) or one of its deployment variants")
    predict.add_argument("model_dir", help="a directory written by `hpo retrain` (runs/<study>/best) or `hpo compress` (runs/<study>/deploy/<variant>)")
    predict.add_argument("--variant", help="with runs/<study>/best: use its variant built by `hpo compress` (int8, onnx, onnx-int8, pruned, distilled)")
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to label (repeat for more)")
    source.add_argument("--file", help="a CSV of texts")
    predict.add_argument("--text-column", help="the CSV's text column (default: the training data's)")
    predict.add_argument("--out", help="out.csv or out.jsonl (default: JSON lines on stdout)")
    predict.set_defaults(func=cmd_predict)


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="study name")
    p.add_argument("--data-dir", help="folder holding the data sets (default: $DATA_DIR or data/)")
    _storage(p)


def cmd_report(args) -> int:
    from hpo.dashboard.attach import attach_to_best_trial
    from hpo.report import open_existing_study, report_study
    from hpo.spec import default_data_dir
    from storage import default_artifact_dir, resolve_storage_url

    url = resolve_storage_url(args.storage)
    path = report_study(args.name, url, default_data_dir(args.data_dir))
    attach_to_best_trial(open_existing_study(args.name, url)[0], [path], default_artifact_dir(url))
    print(f"report: {path} (and report.md, one CSV per table, in {path.parent})")
    return 0


def cmd_retrain(args) -> int:
    from hpo.best import retrain_best
    from hpo.dashboard.attach import attach_to_best_trial
    from hpo.report import open_existing_study
    from hpo.spec import default_data_dir
    from storage import default_artifact_dir, resolve_storage_url, run_dir

    url = resolve_storage_url(args.storage)
    study, spec = open_existing_study(args.name, url)
    out = run_dir(spec.name) / "best"
    metrics = retrain_best(study, spec, default_data_dir(args.data_dir), out, n_resamples=args.resamples, trial_number=args.trial)
    attach_to_best_trial(study, [out / metrics.FILENAME], default_artifact_dir(url), metrics.trial)
    d, tuned = metrics.test.default, metrics.test.tuned
    if tuned is not None:
        shown = f"macro F1 {d['macro_f1']:.4f} at 0.5, {tuned['macro_f1']:.4f} at tuned thresholds"
    else:
        shown = f"accuracy {d['accuracy']:.4f}, macro F1 {d['macro_f1']:.4f}"
    print(f"best model: {out}  test {shown}, macro ROC-AUC {d['macro_roc_auc']:.4f}")
    for warning in metrics.collapse:
        print(f"warning: {warning}")
    return 0


def cmd_score_trials(args) -> int:
    from hpo.best import score_trials
    from hpo.report import open_existing_study
    from hpo.spec import default_data_dir
    from storage import resolve_storage_url

    study, spec = open_existing_study(args.name, resolve_storage_url(args.storage))
    scored = score_trials(study, spec, default_data_dir(args.data_dir))
    print(f"scored {len(scored)} trial(s) on test; `hpo report {spec.name}` shows them")
    return 0


def _add_compress(sub) -> None:
    from hpo.deploy.settings import VARIANTS

    compress = sub.add_parser("compress", help="build deployment variants of runs/<study>/best and their report in runs/<study>/deploy/")
    compress.add_argument("name", help="study name (studies/<name>.yaml)")
    compress.add_argument("--data-dir", help="folder holding the data sets (default: $DATA_DIR or data/)")
    compress.add_argument("--variants", help=f"comma-separated, some of {','.join(VARIANTS)} (default: the spec's compress.variants)")
    compress.add_argument("--temperature", type=float, help="distillation temperature (spec: compress.distill.temperature)")
    compress.add_argument("--alpha", type=float, help="weight of the teacher's soft term, 0-1 (spec: compress.distill.alpha)")
    compress.add_argument("--distill-epochs", type=int, help="student training epochs (spec: compress.distill.epochs)")
    compress.add_argument("--resamples", type=int, help="bootstrap resamples for the 95 %% intervals (spec: compress.resamples)")
    compress.add_argument("--remeasure", action="store_true", help="measure the variants already built again (thresholds kept) and rewrite the report")
    compress.set_defaults(func=cmd_compress)


def cmd_compress(args) -> int:
    from hpo.deploy.compress import compress_study
    from hpo.deploy.settings import settings_with
    from hpo.spec import default_data_dir, load_spec
    from storage import run_dir

    spec = load_spec(args.name)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    settings = settings_with(spec.compress, variants, args.temperature, args.alpha, args.distill_epochs, args.resamples)
    path = compress_study(spec, run_dir(spec.name) / "best", default_data_dir(args.data_dir), settings, rebuild=not args.remeasure)
    print(f"deployment report: {path} (and report.md, summary.json; variants in {path.parent})")
    return 0


def cmd_predict(args) -> int:
    from hpo.best import predict

    n = predict(args.model_dir, args.text, args.file, args.text_column, args.out, variant=args.variant)
    if args.out:
        print(f"labelled {n} text(s): {args.out}")
    return 0
