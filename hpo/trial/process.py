"""Run one trial's training in its own process and stream its epochs back.

A crash, an out-of-memory error or a prune ends only that process, and its memory (GPU memory
included) goes with it. Processes are forked from a forkserver that has already imported torch
and transformers (or the spec's own trainer module), so a trial starts in milliseconds instead of
seconds.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpo.errors import HpoError
from trainers.config import TrainConfig

_context: mp.context.BaseContext | None = None


def context(trainer: str) -> mp.context.BaseContext:
    """The forkserver, preloading the first trainer's module (trainers.loop imports torch,
    transformers and sklearn once); a later, different trainer is imported by each trial."""
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload([__name__, trainer.partition(":")[0]])
    return _context


def load_trainer(name: str) -> Callable:
    """Import a `module:function` trainer; modules under the current directory count, as with
    `python -m`, so a project's own trainer needs no install."""
    module, _, function = name.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as e:
        raise HpoError(
            f"trainer {name!r} cannot be loaded ({e}); give an importable module:function"
        ) from e


@dataclass
class TrialOutcome:
    """How the trial's process ended: finished, stopped by the pruner, or failed (with why)."""

    status: str  # "finished" | "stopped" | "failed"
    best_epoch: int | None = None
    best_value: float | None = None
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # the process's; negative: the signal that ended it


OnEpoch = Callable[[int, dict], bool]
OnResources = Callable[[dict], None]
EXIT_GRACE_S = 10.0  # for a child that has sent its outcome to finish exiting by itself


def run_trial_process(
    config: TrainConfig,
    on_epoch: OnEpoch,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    *,
    trainer: str,
    on_resources: OnResources | None = None,
) -> TrialOutcome:
    """Start the training process, hand each epoch to `on_epoch` (True → stop it), wait for it.
    It runs in this process's environment as it is now (updated with `env`), not as it was
    when the forkserver started, as a subprocess started now would. The process's stdout and
    stderr go to `log_path` when given. `trainer` is a `module:function` taking (config,
    reporter) and returning an object with best_epoch, best_value and stopped_early, like
    trainers.loop.train_and_evaluate. `on_resources` gets the run's measured device memory
    (trainers.reporting.Resources as a dict) when the trainer reports it."""
    ctx = context(trainer)
    parent, child = ctx.Pipe()
    args = (
        config.to_json(),
        child,
        os.getpid(),
        {**os.environ, **(env or {})},
        str(log_path) if log_path else None,
        trainer,
    )
    process = ctx.Process(target=_child_main, args=args, daemon=True)
    process.start()
    child.close()
    outcome = None
    try:
        outcome = _serve(parent, process, on_epoch, on_resources or (lambda _: None))
        return outcome
    finally:
        # A child that has sent its outcome is exiting: its exit handlers unlink the semaphores
        # its libraries made, and a SIGTERM then would leave the resource tracker warning of
        # leaks. Only a runner interrupted mid-trial stops the child at once.
        _stop(process, settle=EXIT_GRACE_S if outcome else 0.0)
        parent.close()
        if outcome:
            outcome.exit_code = process.exitcode


def _serve(conn, process, on_epoch: OnEpoch, on_resources: OnResources) -> TrialOutcome:
    while True:
        if not conn.poll(0.5):
            if not process.is_alive():
                return _died(process)
            continue
        try:
            message = conn.recv()
        except EOFError:
            process.join(5)
            return _died(process)
        kind = message[0]
        if kind == "epoch":
            conn.send(bool(on_epoch(message[1], message[2])))
        elif kind == "resources":
            on_resources(message[1])
        elif kind == "done":
            return TrialOutcome(**message[1])
        elif kind == "error":
            return TrialOutcome(status="failed", error=message[1])


def _died(process) -> TrialOutcome:
    code = process.exitcode
    why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    hint = " (out of memory?)" if code == -9 else ""
    return TrialOutcome(status="failed", error=f"training process died: {why}{hint}")


def _stop(process, settle: float, grace: float = 10.0) -> None:
    process.join(settle)
    if process.is_alive():
        process.terminate()
        process.join(grace)
    if process.is_alive():
        process.kill()
        process.join()


# --- in the child process ---------------------------------------------------------------------


class _PipeReporter:
    def __init__(self, conn) -> None:
        self.conn = conn

    def report(self, epoch: int, metrics: dict) -> bool:
        scalars = " ".join(f"{k}={v:.4g}" for k, v in metrics.items() if isinstance(v, float))
        logging.getLogger("trial").info("epoch %d: %s", epoch, scalars)  # in the trial's log only
        self.conn.send(("epoch", epoch, metrics))
        return self.conn.recv()

    def report_resources(self, resources) -> None:
        logging.getLogger("trial").info("resources: %s", resources)
        self.conn.send(("resources", dataclasses.asdict(resources)))


def _child_main(
    config_json: str,
    conn,
    runner_pid: int,
    env: dict[str, str],
    log_path: str | None,
    trainer: str,
) -> None:
    # Ctrl-C reaches the whole process group: the runner alone decides how its trial ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()  # the forkserver's copy dates from its start
    os.environ.update(env)
    if log_path:
        _redirect_output(log_path)
    _exit_when_orphaned(runner_pid)
    from trainers.errors import TrainerError

    try:
        config = TrainConfig.model_validate_json(config_json)
        result = load_trainer(trainer)(config, _PipeReporter(conn))
        status = "stopped" if result.stopped_early else "finished"
        extras = {
            "val_probs": getattr(
                result, "val_probs", None
            ),  # the best epoch's, for the trial's plots
            "deployed": getattr(result, "extras", {}).get("deployed"),
        }  # multi-objective studies' measurements
        conn.send(
            (
                "done",
                {
                    "status": status,
                    "best_epoch": result.best_epoch,
                    "best_value": result.best_value,
                    "extras": extras,
                },
            )
        )
    except TrainerError as e:
        traceback.print_exc()
        conn.send(("error", f"{type(e).__name__}: {e}"))
    except Exception as e:
        traceback.print_exc()
        reason = "out of memory" if "out of memory" in str(e).lower() else type(e).__name__
        tail = traceback.format_exc(limit=-3)
        conn.send(("error", f"{reason}: {str(e).splitlines()[0] if str(e) else ''}\n{tail}"))
    finally:
        sys.stdout.flush()
        conn.close()


def _redirect_output(path: str) -> None:
    """Send this process's fds 1 and 2 (Python, C++ and CUDA output alike) to the trial's log,
    with INFO logging and line-buffered stdout so a killed trial's log ends where it died."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout.reconfigure(line_buffering=True)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def _exit_when_orphaned(runner_pid: int) -> None:
    """A runner killed with SIGKILL cannot stop its trial: the trial stops itself, so the GPU is
    free for the retry."""

    def watch() -> None:
        while True:
            time.sleep(2)
            try:
                os.kill(runner_pid, 0)
            except ProcessLookupError:
                os._exit(3)

    threading.Thread(target=watch, daemon=True, name="orphan-watch").start()
