"""Storage URL resolution: where studies live, and how URLs appear in logs."""

from __future__ import annotations

import os
import re
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from storage.errors import StorageError
from storage.proxy_wire import DEFAULT_PORT

DEFAULT_STORAGE_URL = "sqlite:///runs/optuna.db"

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_TOKEN = re.compile(r"\x00(\d+)\x00")
_POSTGRES_SCHEMES = {"postgres", "postgresql"}
PROXY_SCHEME = "grpc"


def resolve_storage_url(explicit: str | None = None) -> str:
    """Return the storage URL to use: `explicit`, else env HPO_STORAGE, else the default.

    `${VAR}`/`$VAR` references are filled from the environment so secrets never appear on a
    command line; bare PostgreSQL schemes get the psycopg 3 driver; a SQLite file's directory
    is created so the first run does not fail with "unable to open database file".
    """
    raw = explicit or os.environ.get("HPO_STORAGE") or DEFAULT_STORAGE_URL
    url = _expand_env(raw)
    if url.drivername in _POSTGRES_SCHEMES:
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        _sqlite_folder(Path(url.database))
    return url.render_as_string(hide_password=False)


def _sqlite_folder(database: Path) -> None:
    """Create the SQLite file's folder, or say in one line why it cannot be."""
    if database.is_dir():
        raise StorageError(
            f"SQLite database {database} is a folder; give a file path, e.g. sqlite:///{database}/optuna.db"
        )
    blocking = next((p for p in database.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise StorageError(
            f"SQLite database {database}: {blocking} is a file, not a folder; choose another --storage"
        )
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(
            f"cannot create the folder {database.parent} for SQLite database {database.name} ({e.strerror or e}); choose another --storage"
        ) from None


def proxy_address(url: str) -> tuple[str, int] | None:
    """(host, port) of a grpc://host[:port] URL (`hpo storage-proxy`), None for a database URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None
    if parsed.drivername != PROXY_SCHEME:
        return None
    if not parsed.host or parsed.database or parsed.username or parsed.query:
        raise StorageError(
            f"a storage proxy URL is grpc://host:port (e.g. grpc://127.0.0.1:{DEFAULT_PORT}), not {redact(url)}"
        )
    return parsed.host, parsed.port or DEFAULT_PORT


def redact(url: str) -> str:
    """Return `url` with its password hidden, for log lines and error messages."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return "<unparsable storage URL>"
    query = {k: "***" if k.lower() == "password" else v for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


def _expand_env(raw: str) -> URL:
    """Parse `raw` with env references filled in.

    Values are swapped for NUL-delimited tokens before parsing and filled into the parsed
    components afterwards, so a password containing '@', '/' or '%' is escaped correctly.
    Digit-only values (ports) need no escaping and go in as text. A URL that only parses once
    filled (a whole URL in one variable) is filled as text.
    """
    _require_set(raw)
    values: list[str] = []

    def hold(match: re.Match[str]) -> str:
        value = os.environ[match[1] or match[2]]
        if value.isdigit():
            return value
        values.append(value)
        return f"\x00{len(values) - 1}\x00"

    tokenised = _VAR.sub(hold, raw)
    try:
        url = make_url(tokenised)
    except (ArgumentError, ValueError):
        return _parse(_fill(tokenised, values))

    def fill(text: str | None) -> str | None:
        return None if text is None else _fill(text, values)

    query = {
        k: fill(v) if isinstance(v, str) else tuple(map(fill, v)) for k, v in url.query.items()
    }
    return url.set(
        username=fill(url.username),
        password=fill(url.password),
        host=fill(url.host),
        database=fill(url.database),
        query=query,
    )


def _require_set(raw: str) -> None:
    for match in _VAR.finditer(raw):
        name = match[1] or match[2]
        if name not in os.environ:
            raise StorageError(
                f"storage URL references ${name}, but {name} is not set in the environment"
            )


def _fill(text: str, values: list[str]) -> str:
    return _TOKEN.sub(lambda m: values[int(m[1])], text)


def _parse(text: str) -> URL:
    try:
        return make_url(text)
    except (ArgumentError, ValueError) as e:
        raise StorageError(
            f"not a valid storage URL ({e}); expected e.g. {DEFAULT_STORAGE_URL} or "
            "postgresql://user:${PGPASSWORD}@host/db"
        ) from e


def require_existing_database(url: str) -> None:
    """Commands that only read a study must not create an empty SQLite file where a typo points."""
    parsed = make_url(url)
    if (
        parsed.get_backend_name() == "sqlite"
        and parsed.database not in (None, "", ":memory:")
        and not Path(parsed.database).is_file()
    ):
        raise StorageError(
            f"no study database at {parsed.database}; run `hpo study` first, or pass --storage (or set HPO_STORAGE)"
        )
