"""Errors raised by the storage layer."""


class StorageError(Exception):
    """A storage URL or database problem the user must fix; the message is one line."""
