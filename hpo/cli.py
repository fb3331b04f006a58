"""`hpo <command>`: the service's entry point (the Makefile's targets call it).

Every user-facing error is printed as one line and exits 2; no traceback for bad input.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path

from hpo.errors import HpoError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("optuna").setLevel(logging.WARNING)
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
    study.set_defaults(func=cmd_study)

    check = sub.add_parser("check", help="validate a spec, its data and its model; run nothing")
    _common(check)
    check.set_defaults(func=cmd_check)
    return parser


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="study name (studies/<name>.yaml) or a path to a spec")
    p.add_argument("--data-dir", help="folder holding the data sets (default: $DATA_DIR or data/)")
    p.add_argument("--storage", help="storage URL (default: $HPO_STORAGE or sqlite:///runs/optuna.db)")


def _load(args):
    from hpo.spec import default_data_dir, load_spec, resolve_spec_path

    spec = load_spec(args.name)
    if getattr(args, "n_trials", None):
        spec = spec.model_copy(update={"n_trials": args.n_trials})
    return spec, resolve_spec_path(args.name), default_data_dir(args.data_dir)


def cmd_check(args) -> int:
    from hpo.runner import preflight

    spec, path, data_dir = _load(args)
    facts = preflight(spec, data_dir)
    print(f"{path}: ok  ({', '.join(f'{k}={v}' for k, v in facts.items() if k.startswith('n_'))})")
    return 0


def cmd_study(args) -> int:
    from hpo.runner import describe_study, n_finished, open_study, preflight, print_best, run_study
    from storage import redact, resolve_storage_url

    spec, path, data_dir = _load(args)
    url = resolve_storage_url(args.storage)
    facts = preflight(spec, data_dir)
    study = open_study(spec, url)
    describe_study(study, spec, Path(path).read_text(), facts)
    print(
        f"study {spec.name} on {redact(url)}: {n_finished(study)}/{spec.n_trials} trials finished; "
        f"objective {spec.objective.metric}; data {data_dir}",
        flush=True,
    )
    start = time.perf_counter()
    run_study(spec, study, data_dir)
    print(f"study {spec.name}: {n_finished(study)} finished trials, {time.perf_counter() - start:.0f}s this run", flush=True)
    print_best(study)
    return 0
