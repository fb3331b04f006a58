"""The study runner: specs, search spaces, samplers, pruners, trials in worker processes.

Imports `trainers` lazily where it needs torch, so `hpo report` works without it.
"""

from hpo.errors import HpoError, SpecError

__all__ = ["HpoError", "SpecError"]
