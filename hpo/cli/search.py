"""The commands that run a study: check a spec, propose one for a CSV, run the search in this
process or in several worker processes, then the spec's seed selection."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from hpo.cli.results import print_selection
from hpo.errors import HpoError


def _heartbeat_s(args) -> int:
    return args.heartbeat or args.settings.heartbeat_s


def load_args_spec(args):
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

    spec, source, data_dir = load_args_spec(args)
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

    spec, source, data_dir = load_args_spec(args)
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
        print_selection(study, spec, data_dir)
        print(f"selection: {time.perf_counter() - start:.0f}s", flush=True)


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

    spec, source, data_dir = load_args_spec(args)
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
