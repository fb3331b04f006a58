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

from hpo.arguments import (
    OneLineParser,
    Settings,
    existing_dir,
    folder,
    gpu_list,
    non_negative_int,
    port,
    positive_float,
    positive_int,
)
from hpo.errors import HpoError


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _sigterm_as_interrupt()
    try:
        args.settings = Settings.from_env()
        logging.basicConfig(
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
        if getattr(args, "uses_optuna", True):
            import optuna  # configures its own logger on import: quiet it after, not before

            optuna.logging.set_verbosity(
                optuna.logging.WARNING
            )  # the runner prints one line per trial itself
        return args.func(args) or 0
    except KeyboardInterrupt:
        print(
            "interrupted: the running trial was stopped and marked FAIL; finished trials are kept",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # `hpo predict … | head`: the reader left; nothing to say to it
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter's final flush must not fail again
        return 141
    except Exception as e:
        if _is_user_error(e):
            print(f"error: {_one_line(e)}", file=sys.stderr)
            return 2
        raise


def _one_line(e: Exception) -> str:
    """A user error is one line even when a library's text inside it is not."""
    return " ".join(str(e).split()) or type(e).__name__


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


def _heartbeat_s(args) -> int:
    return args.heartbeat or args.settings.heartbeat_s


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


def _load(args):
    """The spec (variant and --n-trials applied, validated again) with its source, and the data folder."""
    from hpo.spec import BudgetSpec, StudySpec, default_data_dir, load_spec_source, validated

    source = load_spec_source(args.name, getattr(args, "variant", None))
    spec = source.spec
    if getattr(args, "n_trials", None):
        spec = validated(
            StudySpec,
            {**spec.model_dump(mode="json"), "n_trials": args.n_trials},
            f"--n-trials {args.n_trials}",
        )
    if getattr(args, "budget_min", None):
        spec = spec.model_copy(update={"budget": BudgetSpec(minutes=args.budget_min)})
    return spec, source, default_data_dir(args.data_dir)


def _print_warnings(facts) -> None:
    for warning in facts.warnings:
        print(f"warning: {warning}", flush=True)


def cmd_check(args) -> int:
    from hpo.study import preflight

    spec, source, data_dir = _load(args)
    facts = preflight(spec, data_dir)
    print(f"{source.path}: ok  ({', '.join(f'n_{split}={n}' for split, n in facts.rows.items())})")
    _print_warnings(facts)
    if args.profile:
        from hpo.report.profile_tables import profile_markdown
        from hpo.study.profile import profile_study

        print(profile_markdown(profile_study(spec, data_dir)))
    return 0


def cmd_init(args) -> int:
    from hpo.init import init_study
    from hpo.spec import STUDIES_DIR, default_data_dir

    labels = [c.strip() for c in args.labels.split(",") if c.strip()] if args.labels else None
    data_dir = default_data_dir(args.data_dir)
    path = init_study(args.data, data_dir, STUDIES_DIR, name=args.name, task=args.task, text_column=args.text_column, labels=labels,
                      force=args.force)  # fmt: skip
    print(f"wrote {path}: every choice is commented there; checking it now", flush=True)
    check = argparse.Namespace(name=str(path), data_dir=str(data_dir), variant=None, profile=False)
    cmd_check(check)
    print(
        f"next: make study NAME={path.stem}" + (f" DATA_DIR={data_dir}" if args.data_dir else "")
    )
    return 0


def _prepare_data(spec, data_dir: Path, storage_url: str):
    """Preflight, the data profile and a split file's audit (runs/<study>/split.csv)."""
    from hpo.study.profile import prepare_data
    from storage import default_artifact_dir, run_dir

    return prepare_data(
        spec, data_dir, run_dir(spec.name, root=default_artifact_dir(storage_url).parent)
    )


def _tracker(study, spec, cli_uri: str | None, storage_url: str):
    """The study's experiment tracker: --mlflow, else the spec's tracking.mlflow, else none."""
    from hpo.tracking import open_tracker, resolve_mlflow_uri
    from storage import default_artifact_dir, redact

    uri = resolve_mlflow_uri(cli_uri or spec.tracking.mlflow, storage_url)
    tracker = open_tracker(study, spec, uri, default_artifact_dir(storage_url), storage_url)
    if uri:
        print(
            f"study {spec.name}: trials logged to MLflow at {redact(uri) if '@' in uri else uri}",
            flush=True,
        )
    return tracker


def cmd_study(args) -> int:
    from hpo.study import n_finished, run_study
    from storage import default_artifact_dir, redact, resolve_storage_url

    spec, source, data_dir = _load(args)
    url = resolve_storage_url(args.storage)
    facts = (
        None if args.join else _prepare_data(spec, data_dir, url)
    )  # `hpo workers` checked the data once
    study = _open_checked(args, spec, source, url, facts)
    tracker = _tracker(study, spec, args.mlflow, url)
    print(
        f"study {spec.name} on {redact(url)}: {n_finished(study)}/{spec.n_trials} trials finished; "
        f"objective {spec.objective.metric}; data {data_dir}",
        flush=True,
    )
    start = time.perf_counter()
    run_study(spec, study, data_dir, artifact_dir=default_artifact_dir(url), tracker=tracker)
    _print_end(study, spec, start)
    if not (args.join or args.no_select):
        _select_after_search(study, spec, data_dir)
    return 0


def _select_after_search(study, spec, data_dir: Path) -> None:
    """A spec with `selection:` re-runs its top trials once the search has ended (hpo.best.select)."""
    from hpo.best.select import selection_due

    due, reason = selection_due(study, spec)
    if reason:
        print(f"selection: {reason}", flush=True)
    if due:
        start = time.perf_counter()
        _print_selection(study, spec, data_dir)
        print(f"selection: {time.perf_counter() - start:.0f}s", flush=True)


def _print_selection(study, spec, data_dir: Path) -> None:
    from hpo.best.select import select, selection_lines

    candidates = select(study, spec, data_dir, members_root=_members_dir(study))
    print("\n".join(selection_lines(candidates, spec.objective.metric)))
    print(
        f"selected trial {candidates[0].trial}; `hpo retrain {spec.name}` retrains it", flush=True
    )


def _open_checked(args, spec, source, url: str, facts):
    """The study, created or loaded with the spec's sampler and pruner, refused if it ran from
    another spec or, when this run read the data (`facts`), on other data; then described."""
    from hpo.study import check_same_data, check_same_spec, describe_study, open_study

    study = open_study(spec, url, heartbeat_interval=_heartbeat_s(args))
    check_same_spec(study, spec, url)
    if facts is not None:
        check_same_data(study, spec, facts, url)
        describe_study(study, spec, source.note_text, facts)
        _print_warnings(facts)
    return study


def _print_end(study, spec, start: float) -> None:
    from hpo.study import n_finished, print_best

    print(
        f"study {spec.name}: {n_finished(study)} finished trials, {time.perf_counter() - start:.0f}s this run",
        flush=True,
    )
    print_best(study)


def cmd_workers(args) -> int:
    from hpo.study import n_finished
    from hpo.study.workers import (
        gpu_memory,
        start_workers,
        wait_workers,
        worker_envs,
        workers_per_gpu,
    )
    from storage import redact, resolve_storage_url
    from storage.pg_budget import check_room

    spec, source, data_dir = _load(args)
    url = resolve_storage_url(args.storage)
    gpus = args.gpus
    if args.per_gpu and not gpus:
        raise HpoError("hpo workers: --per-gpu needs --gpus (the devices to pack trials on)")
    per_gpu, packed = workers_per_gpu(args.per_gpu)
    n = args.n_workers or (per_gpu * len(gpus) if gpus else 0)
    if n < 1:
        raise HpoError(
            "hpo workers: give the number of workers with -n K (or devices with --gpus 0,1)"
        )
    _check_worker_count(n)
    if gpus:
        from hpo.study.gpus import check_gpus

        check_gpus(gpus)
    memory = gpu_memory(gpus, args.gpu_memory_mb) if packed and gpus else None
    facts = _prepare_data(spec, data_dir, url)
    study = _open_checked(
        args, spec, source, url, facts
    )  # created once, here: workers only load it
    check_room(
        url, n
    )  # PostgreSQL only: what a proxy or SQLite holds is not the workers' to count
    tracker = _tracker(
        study, spec, args.mlflow, url
    )  # the parent run exists before any worker starts
    envs = worker_envs(n, gpus, gpu_memory_mb=memory)
    placement = (
        ", ".join(f"{e['HPO_WORKER']}→GPU {e['CUDA_VISIBLE_DEVICES']}" for e in envs)
        if gpus
        else f"{envs[0]['OMP_NUM_THREADS']} CPU threads each"
    )
    if memory:
        placement += "; trials packed by measured memory"
    print(
        f"study {spec.name} on {redact(url)}: {n_finished(study)}/{spec.n_trials} trials finished; {n} workers ({placement})",
        flush=True,
    )
    start = time.perf_counter()
    procs = start_workers(
        source.path,
        envs,
        storage=args.storage,
        data_dir=data_dir,
        heartbeat=_heartbeat_s(args),
        n_trials=args.n_trials,
        variant=source.variant,
        mlflow=args.mlflow,
        budget_min=args.budget_min,
    )
    code = wait_workers(procs)
    tracker.study_stopped(study, spec.n_trials)
    _print_end(study, spec, start)
    if code == 0 and not args.no_select:
        _select_after_search(study, spec, data_dir)
    return code


def _check_worker_count(n: int) -> None:
    """Each worker imports torch and trains: far more than the cores can run only thrashes."""
    limit = 4 * (os.cpu_count() or 1)
    if n > limit:
        raise HpoError(
            f"-n {n}: more workers than this machine can run (at most {limit}, 4 per CPU core)"
        )


def cmd_dashboard(args) -> int:
    from hpo.dashboard import serve
    from storage import default_artifact_dir, resolve_storage_url

    url = resolve_storage_url(args.storage)
    serve(url, args.host, args.port, args.artifact_dir or default_artifact_dir(url))
    return 0


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


def cmd_storage_proxy(args) -> int:
    from storage import resolve_storage_url
    from storage.rdb import Pool

    try:
        from storage.proxy_server import ProxySettings, serve_proxy
    except ImportError as e:
        raise HpoError(
            f"hpo storage-proxy needs grpcio: pip install 'hpo-text[proxy]' ({e})"
        ) from e
    if min(args.threads, args.pool_size, args.processes) < 1:
        raise HpoError(
            "hpo storage-proxy: --threads, --pool-size and --processes must be at least 1"
        )
    url = resolve_storage_url(args.storage)
    pool = Pool(size=args.pool_size, overflow=0)
    serve_proxy(ProxySettings(url, args.host, args.port, args.threads, pool, args.processes))
    return 0


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
        members_dir=_members_dir(study),
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


def _members_dir(study) -> Path:
    """Where selection re-runs keep the models an ensemble is built from (hpo.best.members)."""
    from hpo.best.members import MEMBERS_DIR
    from storage import run_dir

    return run_dir(study.study_name) / MEMBERS_DIR


def cmd_select(args) -> int:
    _, study, spec, data_dir = _stored_study(args)
    _print_selection(study, spec, data_dir)
    return 0


def cmd_score_trials(args) -> int:
    from hpo.best import score_trials

    _, study, spec, data_dir = _stored_study(args)
    scored = score_trials(study, spec, data_dir)
    print(f"scored {len(scored)} trial(s) on test; `hpo report {spec.name}` shows them")
    return 0


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
