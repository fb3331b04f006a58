"""The command line: every command's arguments, checked as they are parsed (hpo.cli.arguments),
and the function each command runs."""

from __future__ import annotations

import argparse

from hpo.cli.arguments import (
    OneLineParser,
    existing_dir,
    folder,
    gpu_list,
    non_negative_int,
    port,
    positive_float,
    positive_int,
)
from hpo.cli.results import (
    cmd_compress,
    cmd_predict,
    cmd_report,
    cmd_retrain,
    cmd_score_trials,
    cmd_select,
)
from hpo.cli.search import cmd_check, cmd_init, cmd_study, cmd_workers
from hpo.cli.serve import cmd_dashboard, cmd_storage_proxy


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="hpo", description="Optuna studies of transformer fine-tuning")
    sub = parser.add_subparsers(dest="command", required=True)

    study = sub.add_parser("study", help="create or resume a study and run it to n_trials")
    _common(study)
    study.add_argument("--n-trials", type=positive_int, help="override the spec's n_trials")
    _budget(study)
    _heartbeat(study)
    study.add_argument(
        "--join",
        action="store_true",
        help="join a study `hpo workers` created: skip the data check",
    )
    _mlflow(study)
    _no_select(study)
    study.set_defaults(func=cmd_study)

    workers = sub.add_parser(
        "workers", help="run a study with several worker processes (one per GPU with --gpus)"
    )
    _common(workers)
    workers.add_argument(
        "-n",
        "--n-workers",
        type=positive_int,
        help="how many workers (default: one per --gpus device)",
    )
    workers.add_argument(
        "--gpus",
        type=gpu_list,
        help="comma-separated CUDA devices, e.g. 0,1: worker i runs on device i (round-robin)",
    )
    workers.add_argument(
        "--per-gpu",
        metavar="K|auto",
        help="trials per GPU: K workers each, or auto: as many as fit by the trials' measured memory",
    )
    workers.add_argument(
        "--gpu-memory-mb",
        type=float,
        help="with --per-gpu auto: each GPU's memory (default: from nvidia-smi)",
    )
    workers.add_argument("--n-trials", type=positive_int, help="override the spec's n_trials")
    _budget(workers)
    _heartbeat(workers)
    _mlflow(workers)
    _no_select(workers)
    workers.set_defaults(func=cmd_workers)

    check = sub.add_parser("check", help="validate a spec, its data and its model; run nothing")
    _common(check)
    check.add_argument(
        "--profile",
        action="store_true",
        help="also print the data profile (rows, label shares, lengths, duplicates)",
    )
    check.set_defaults(func=cmd_check)

    init = sub.add_parser(
        "init",
        help="propose studies/<name>.yaml for a CSV (or a folder of train/val/test CSVs), then check it",
    )
    init.add_argument(
        "data",
        help="one CSV (split into train/val/test by the spec) or a folder with train.csv, val.csv[, test.csv]",
    )
    init.add_argument("--name", help="study name (default: the file's or folder's name)")
    init.add_argument(
        "--task",
        choices=["multi_label", "multi_class"],
        help="default: 0/1 columns → multi_label, one column of classes → multi_class",
    )
    init.add_argument(
        "--text-column",
        help="the column holding the texts (default: the string column with the longest texts)",
    )
    init.add_argument(
        "--labels",
        help="comma-separated 0/1 label columns, or the one column of classes (default: detected)",
    )
    init.add_argument(
        "--data-dir",
        help="DATA_DIR the spec's data.dir is relative to (default: $DATA_DIR or data/)",
    )
    init.add_argument(
        "--force", action="store_true", help="overwrite an existing studies/<name>.yaml"
    )
    init.set_defaults(func=cmd_init)

    dash = sub.add_parser(
        "dashboard", help="serve optuna-dashboard on the study storage, with the trials' artifacts"
    )
    _storage(dash)
    dash.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only)",
    )
    dash.add_argument(
        "--port", type=port, default=8080, help="port (default 8080; 0: any free one)"
    )
    dash.add_argument(
        "--artifact-dir",
        type=folder,
        help="artifact store (default: next to a SQLite file, else $HPO_ARTIFACT_DIR or runs/artifacts)",
    )
    dash.set_defaults(func=cmd_dashboard)
    _add_proxy_command(sub)
    _add_result_commands(sub)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="study name (studies/<name>.yaml) or a path to a spec")
    p.add_argument(
        "--data-dir",
        type=existing_dir,
        help="folder holding the data sets (default: $DATA_DIR or data/)",
    )
    _storage(p)
    p.add_argument(
        "--variant", help="run one of the spec's named variants (study <name>-<variant>)"
    )


def _storage(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage", help="storage URL (default: $HPO_STORAGE or sqlite:///runs/optuna.db)"
    )


def _mlflow(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--mlflow", nargs="?", const="default", metavar="URI",
        help="log the study to MLflow: a parent run, a child run per trial (default URI, or a bare --mlflow: a SQLite file beside "
             "the study database, e.g. sqlite:///runs/mlflow.db); overrides the spec's tracking.mlflow",
    )  # fmt: skip


def _heartbeat(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        metavar="SECONDS",
        help="heartbeat interval; a trial silent for twice this is failed and retried (default: $HPO_HEARTBEAT_INTERVAL or 60)",
    )


def _no_select(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-select",
        action="store_true",
        help="skip the spec's `selection:` re-runs after the search (`hpo select NAME` runs them later)",
    )


def _budget(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--budget-min",
        type=positive_float,
        help="time budget in minutes: no trial starts that would end after it (overrides the spec's budget)",
    )


def _add_proxy_command(sub) -> None:
    proxy = sub.add_parser(
        "storage-proxy",
        help="serve the study storage to many workers over gRPC (workers: --storage grpc://HOST:PORT)",
    )
    _storage(proxy)
    proxy.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; 0.0.0.0 for workers on other machines)",
    )
    proxy.add_argument("--port", type=int, default=13000)
    proxy.add_argument("--threads", type=int, default=64, help="calls served at once (default 64)")
    proxy.add_argument(
        "--pool-size",
        type=int,
        default=10,
        help="database connections each proxy process holds, at most (default 10)",
    )
    proxy.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes on the one port (default 1; one serves ~300 trials/min, see README)",
    )
    proxy.set_defaults(func=cmd_storage_proxy)


def _add_result_commands(sub) -> None:
    """report, retrain, score-trials, predict: what a finished study gives back."""
    report = sub.add_parser(
        "report", help="write runs/<study>/report/: tables (md, csv) and plots (html)"
    )
    _study_args(report)
    report.set_defaults(func=cmd_report)

    retrain = sub.add_parser(
        "retrain",
        help="retrain the best trial, tune thresholds on val, test once; write runs/<study>/best/",
    )
    _study_args(retrain)
    retrain.add_argument(
        "--resamples",
        type=non_negative_int,
        default=1000,
        help="bootstrap resamples for the test intervals (default 1000; 0: none)",
    )
    retrain.add_argument(
        "--trial",
        type=non_negative_int,
        help="retrain this complete trial (default: the best; multi-objective: the Pareto trial with the best first objective)",
    )
    retrain.set_defaults(func=cmd_retrain)

    select = sub.add_parser(
        "select",
        help="re-run the top trials with more seeds (spec selection:) and choose on the mean",
    )
    _study_args(select)
    select.set_defaults(func=cmd_select)

    score = sub.add_parser(
        "score-trials",
        help="retrain every complete trial and keep its test scores (never used for selection)",
    )
    _study_args(score)
    score.set_defaults(func=cmd_score_trials)

    _add_compress(sub)

    predict = sub.add_parser(
        "predict",
        help="label texts with a retrained model (runs/<study>/best) or one of its deployment variants",
    )
    predict.add_argument(
        "model_dir",
        help="a directory written by `hpo retrain` (runs/<study>/best) or `hpo compress` (runs/<study>/deploy/<variant>)",
    )
    predict.add_argument(
        "--variant",
        help="with runs/<study>/best: use its variant built by `hpo compress` (int8, onnx, onnx-int8, pruned, distilled)",
    )
    source = predict.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to label (repeat for more)")
    source.add_argument("--file", help="a CSV of texts")
    predict.add_argument(
        "--text-column", help="the CSV's text column (default: the training data's)"
    )
    predict.add_argument("--out", help="out.csv or out.jsonl (default: JSON lines on stdout)")
    predict.set_defaults(func=cmd_predict, uses_optuna=False)  # a model needs no study: start fast


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="study name")
    p.add_argument(
        "--data-dir",
        type=existing_dir,
        help="folder holding the data sets (default: $DATA_DIR or data/)",
    )
    _storage(p)


def _add_compress(sub) -> None:
    from hpo.deploy.variants import VARIANTS

    compress = sub.add_parser(
        "compress",
        help="build deployment variants of runs/<study>/best and their report in runs/<study>/deploy/",
    )
    _study_args(compress)
    compress.add_argument(
        "--variants",
        help=f"comma-separated, some of {','.join(VARIANTS)} (default: the spec's compress.variants)",
    )
    compress.add_argument(
        "--temperature",
        type=float,
        help="distillation temperature (spec: compress.distill.temperature)",
    )
    compress.add_argument(
        "--alpha",
        type=float,
        help="weight of the teacher's soft term, 0-1 (spec: compress.distill.alpha)",
    )
    compress.add_argument(
        "--distill-epochs",
        type=int,
        help="student training epochs (spec: compress.distill.epochs)",
    )
    compress.add_argument(
        "--resamples",
        type=int,
        help="bootstrap resamples for the 95 %% intervals (spec: compress.resamples)",
    )
    compress.add_argument(
        "--remeasure",
        action="store_true",
        help="measure the variants already built again (thresholds kept) and rewrite the report",
    )
    compress.set_defaults(func=cmd_compress)
