"""`hpo <command>`: the service's entry point (the Makefile's targets call it).

Every user-facing error is printed as one line and exits 2; no traceback for bad input. The
commands follow the flow: search (check, init, study, workers), serve (dashboard, storage
proxy), results (report, retrain, select, score-trials, compress, predict); hpo.cli.parser
holds their arguments.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from hpo.cli.arguments import Settings
from hpo.cli.parser import build_parser
from hpo.errors import HpoError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
