"""optuna-dashboard on the study storage, with the trials' artifact store.

Served by a threaded wsgiref server around `optuna_dashboard.wsgi` (the app `run_server`
builds): the port is bound before the URL is printed, port 0 picks a free one, and the browser's
parallel requests (artifacts, polling) do not queue behind each other. SQLite in WAL mode lets it
read while workers write.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from sqlalchemy.engine import make_url

from hpo.errors import HpoError
from storage import artifact_store, open_storage, redact

log = logging.getLogger(__name__)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def make_dashboard_server(
    storage_url: str, host: str, port: int, artifact_dir: Path
) -> WSGIServer:
    """Bind the dashboard to host:port now; `serve_forever()` serves it."""
    import optuna_dashboard

    _check_exists(storage_url)
    storage = open_storage(storage_url, heartbeat_interval=None)
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store(artifact_dir))
    try:
        return make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as e:
        raise HpoError(
            f"cannot listen on {host}:{port}: {e.strerror or e}; choose another --host or --port (make dashboard HOST=... PORT=...)"
        ) from e


def _check_exists(storage_url: str) -> None:
    url = make_url(storage_url)
    if (
        url.get_backend_name() == "sqlite"
        and url.database not in (None, "", ":memory:")
        and not Path(url.database).is_file()
    ):
        raise HpoError(
            f"no study database at {url.database}: run `make study` first, or pass --storage (make dashboard STORAGE=...)"
        )


def dashboard_url(server: WSGIServer) -> str:
    host, port = server.server_address[:2]
    shown = socket.gethostname() if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/dashboard"


def serve(storage_url: str, host: str, port: int, artifact_dir: Path) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    server = make_dashboard_server(storage_url, host, port, artifact_dir)
    print(f"optuna-dashboard for {redact(storage_url)}, artifacts in {artifact_dir}", flush=True)
    if not _is_loopback(host):
        print(
            f"warning: listening on {host}: anyone who can reach this machine can read and change the studies",
            flush=True,
        )
    print(f"open {dashboard_url(server)}   (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False
