"""Errors the trainer raises for bad input: each message is one line a user can act on."""


class TrainerError(Exception):
    """Root of the trainer's user-facing errors."""


class DataError(TrainerError):
    """A data file, column or label value is not what the config says."""


class ModelNotFoundError(TrainerError):
    """The model is neither a local directory nor reachable on the hub."""
