"""A throwaway PostgreSQL server: initdb and pg_ctl on a free 127.0.0.1 port, a user with a
password full of URL-special characters. The tests' `postgres` fixture and the benchmarks use it.

`.ci/postgres.sh` installs the server binaries (Debian: /usr/lib/postgresql/<version>/bin).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL


class PostgresUnavailable(RuntimeError):
    """No server binaries, no driver, no user to run it as, or it did not start."""


_SERVER_SETTINGS = (
    # Throwaway data: trade durability for speed on small shared CI machines.
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB"
)


@dataclass
class PostgresServer:
    """A running test server; `.url` is a ready postgresql+psycopg URL for user `hpo`.

    The password deliberately contains URL-special characters: build URLs with `.url`.
    """

    bindir: Path
    root: Path
    port: int
    run_as: str | None
    user: str = "hpo"
    password: str = field(default_factory=lambda: f"hpo-{secrets.token_hex(8)}@/:%")
    dbname: str = "hpo"
    host: str = "127.0.0.1"
    max_connections: int = 60
    netns: str | None = None  # run the server inside this network namespace (`ip netns exec`)
    running: bool = False

    @property
    def url(self) -> str:
        url = URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=self.dbname,
        )
        return url.render_as_string(hide_password=False)

    @property
    def socket_url(self) -> str:
        """The same database over the server's unix socket: no network, whichever namespace."""
        query = {"host": str(self.socket_dir), "port": str(self.port)}
        return URL.create(
            "postgresql+psycopg",
            username=self.user,
            password=self.password,
            database=self.dbname,
            query=query,
        ).render_as_string(hide_password=False)

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses={self.host} -c max_connections={self.max_connections} "
        log = str(self.root / "server.log")
        self._pg_ctl(*["start", "-w", "-t", "60"], "-l", log, "-o", options + _SERVER_SETTINGS)
        self.running = True

    def stop(self) -> None:
        self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")
        self.running = False

    def restart(self) -> None:
        """Stop and start on the same data dir and port, dropping every client connection."""
        self.stop()
        self.start()

    def initdb(self) -> None:
        # Superuser over the private unix socket for setup; tests log in over TCP with a password.
        flags = "-U postgres -E UTF8 --auth-local=trust --auth-host=scram-sha-256 --no-sync"
        self._run("initdb", "-D", str(self.root / "data"), *flags.split())
        self.socket_dir.mkdir()
        if self.run_as:
            shutil.chown(self.socket_dir, self.run_as)

    def create_user_and_database(self) -> None:
        from psycopg import sql

        with superuser_connection(self.socket_dir, self.port) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(self.user), sql.Literal(self.password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.dbname), sql.Identifier(self.user)
                )
            )

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "server.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), *args)

    def _run(self, tool: str, *args: str) -> None:
        # PostgreSQL refuses to run as root, so root runs the tools as the postgres user.
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        if self.netns:
            prefix = ["ip", "netns", "exec", self.netns, *prefix]
        subprocess.run(
            [*prefix, str(self.bindir / tool), *args],
            cwd=self.root,
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )


def superuser_connection(socket_dir: Path, port: int):
    """An autocommit psycopg connection as the postgres superuser over the server's Unix
    socket (no password: initdb trusts local socket connections)."""
    import psycopg

    return psycopg.connect(
        host=str(socket_dir), port=port, user="postgres", dbname="postgres", autocommit=True
    )


def start_server(*, max_connections: int = 60, netns: str | None = None) -> PostgresServer:
    """A fresh cluster, started, with user and database `hpo`; `teardown` removes it. In
    `netns` it listens on that namespace's 127.0.0.1; its unix socket is reachable from anywhere."""
    server = _create_server()
    server.max_connections, server.netns = max_connections, netns
    try:
        server.initdb()
        server.start()
        server.create_user_and_database()
    except Exception as e:  # any setup failure: clean up, then report one line
        detail = getattr(e, "stderr", None) or server.log_tail() or str(e)
        teardown(server)
        raise PostgresUnavailable(
            f"PostgreSQL test server did not start: {_one_line(detail)}"
        ) from e
    return server


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """A fresh server for the duration of a `with` block; its data dir is removed after."""
    server = start_server()
    try:
        yield server
    finally:
        teardown(server)


def teardown(server: PostgresServer) -> None:
    if server.running:
        try:  # noqa: SIM105
            server.stop()
        except subprocess.SubprocessError:
            pass  # still remove the data dir below
    shutil.rmtree(server.root, ignore_errors=True)


def _create_server() -> PostgresServer:
    bindir = _find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; run .ci/postgres.sh"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise PostgresUnavailable(
            "psycopg is not installed; pip install 'psycopg[binary]'"
        ) from None
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    if run_as:
        shutil.chown(root, run_as)
    return PostgresServer(bindir=bindir, root=root, port=free_port(), run_as=run_as)


def _find_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    # Debian keeps server binaries off PATH, one directory per major version.
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    newest = max(candidates, key=lambda p: float(Path(p).parts[-3]), default=None)
    return Path(newest).parent if newest else None


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresUnavailable(
            "running as root but there is no 'postgres' user to run the server as"
        ) from None
    return "postgres"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return " | ".join(lines[-3:]) if lines else "unknown error"
