"""One exception root for the runner's user-facing errors; the CLI prints them as one line."""


class HpoError(Exception):
    """A problem the user can fix: the message says what and where."""


class SpecError(HpoError):
    """A study spec is malformed or refers to something that does not exist."""
