"""Run one trial's training in its own process and stream its epochs back.

A crash, an out-of-memory error or a prune ends only that process, and its memory (GPU memory
included) goes with it. Processes are forked from a forkserver that has already imported torch
and transformers, so a trial starts in milliseconds instead of seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainers.config import TrainConfig

PRELOAD = ["trainers.loop"]  # imports torch, transformers, sklearn once, in the forkserver
_context: mp.context.BaseContext | None = None


def context() -> mp.context.BaseContext:
    global _context
    if _context is None:
        _context = mp.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


@dataclass
class TrialOutcome:
    """How the trial's process ended: finished, stopped by the pruner, or failed (with why)."""

    status: str  # "finished" | "stopped" | "failed"
    best_epoch: int | None = None
    best_value: float | None = None
    error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)


OnEpoch = Callable[[int, dict], bool]


def run_trial_process(config: TrainConfig, on_epoch: OnEpoch, env: dict[str, str] | None = None) -> TrialOutcome:
    """Start the training process, hand each epoch to `on_epoch` (True → stop it), wait for it."""
    ctx = context()
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_child_main, args=(config.to_json(), child, os.getpid(), env or {}), daemon=True)
    process.start()
    child.close()
    try:
        return _serve(parent, process, on_epoch)
    finally:
        _stop(process)
        parent.close()


def _serve(conn, process, on_epoch: OnEpoch) -> TrialOutcome:
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
        elif kind == "done":
            return TrialOutcome(**message[1])
        elif kind == "error":
            return TrialOutcome(status="failed", error=message[1])


def _died(process) -> TrialOutcome:
    code = process.exitcode
    why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
    hint = " (out of memory?)" if code == -9 else ""
    return TrialOutcome(status="failed", error=f"training process died: {why}{hint}")


def _stop(process, grace: float = 10.0) -> None:
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
        self.conn.send(("epoch", epoch, metrics))
        return self.conn.recv()


def _child_main(config_json: str, conn, runner_pid: int, env: dict[str, str]) -> None:
    os.environ.update(env)
    _exit_when_orphaned(runner_pid)
    from trainers.errors import TrainerError
    from trainers.loop import train_and_evaluate

    try:
        config = TrainConfig.model_validate_json(config_json)
        result = train_and_evaluate(config, _PipeReporter(conn))
        status = "stopped" if result.stopped_early else "finished"
        conn.send(("done", {"status": status, "best_epoch": result.best_epoch, "best_value": result.best_value}))
    except TrainerError as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
    except Exception as e:  # noqa: BLE001 - any crash becomes the trial's recorded reason
        reason = "out of memory" if "out of memory" in str(e).lower() else type(e).__name__
        tail = traceback.format_exc(limit=-3)
        conn.send(("error", f"{reason}: {str(e).splitlines()[0] if str(e) else ''}\n{tail}"))
    finally:
        conn.close()


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
