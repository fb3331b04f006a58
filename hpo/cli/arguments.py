"""The values a user types at the edge, checked where they are parsed: argparse `type=` functions
for the command line, and the environment settings, read once for every command.

A bad value is one line naming the argument or variable and what it accepts, never a traceback
and never a silently ignored value.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hpo.errors import HpoError

DEFAULT_HEARTBEAT_S = 60
_GPU = re.compile(r"\d+|(?:GPU|MIG)-[0-9A-Za-z-]+")


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a whole number of 1 or more")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "a whole number of 0 or more")


def positive_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def port(text: str) -> int:
    value = _int_at_least(text, 0, "a port number from 0 (any free port) to 65535")
    if value > 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number from 0 (any free port) to 65535"
        )
    return value


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


def gpu_list(text: str) -> list[str]:
    """`0,1` or GPU-/MIG- UUIDs, each once; what CUDA_VISIBLE_DEVICES accepts for one device."""
    ids = [g.strip() for g in text.split(",")]
    if not text.strip() or any(not _GPU.fullmatch(g) for g in ids):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of CUDA device numbers (e.g. 0,1) or GPU UUIDs"
        )
    repeated = sorted({g for g in ids if ids.count(g) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(
            f"{text!r} names device(s) {repeated} twice; to put two workers on one GPU use -n (e.g. -n 4 --gpus 0,1)"
        )
    return ids


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text}: {'is a file, not a folder' if path.exists() else 'no such folder'}"
        )
    return path


def folder(text: str) -> Path:
    """A folder that exists or can be created (not a file)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file, not a folder")
    return path


@dataclass(frozen=True)
class Settings:
    """The environment variables every command may read, validated once at start-up."""

    heartbeat_s: int = DEFAULT_HEARTBEAT_S

    @classmethod
    def from_env(cls, env: dict[str, str] | os._Environ = os.environ) -> Settings:
        raw = (env.get("HPO_HEARTBEAT_INTERVAL") or "").strip()
        if not raw:
            return cls()
        try:
            return cls(heartbeat_s=positive_int(raw))
        except argparse.ArgumentTypeError:
            raise HpoError(
                f"HPO_HEARTBEAT_INTERVAL={raw!r}: give the heartbeat interval in whole seconds, 1 or more (default {DEFAULT_HEARTBEAT_S}), or unset it"
            ) from None


class OneLineParser(argparse.ArgumentParser):
    """argparse prints its usage before an error; the edge prints one line (the usage is in --help)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
