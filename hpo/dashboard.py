"""optuna-dashboard on the study storage, with the trials' artifact store, and what it shows of a
study beyond its trials: the objective's name and a note with the spec and the data.

Served by a threaded wsgiref server around `optuna_dashboard.wsgi` (the app `run_server`
builds): the port is bound before the URL is printed, port 0 picks a free one, and the browser's
parallel requests (artifacts, polling) do not queue behind each other. SQLite in WAL mode lets it
read while workers write.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import warnings
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from sqlalchemy.engine import make_url

from hpo.errors import HpoError
from storage import artifact_store, open_storage, redact

if TYPE_CHECKING:
    from hpo.spec import StudySpec  # imports scikit-learn: not needed to serve

log = logging.getLogger(__name__)


def annotate_study(study: optuna.Study, spec: StudySpec, spec_text: str, facts: dict) -> None:
    """Name the objective (the dashboard's axis titles) and write the study note. The note is
    rewritten from the spec whenever it changes: notes of your own belong on trials."""
    from optuna_dashboard import get_note, save_note

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([spec.objective.metric])
    body = study_note(spec, spec_text, facts)
    if get_note(study) != body:
        save_note(study, body)


def study_note(spec: StudySpec, spec_text: str, facts: dict) -> str:
    objective = spec.objective
    sizes = ", ".join(f"{k[2:]} {v}" for k, v in facts.items() if k.startswith("n_"))
    lines = [
        f"## {spec.name}",
        spec.description,
        "",
        f"**Objective:** {objective.resolved_direction} `{objective.metric}` on the validation split, "
        "reported after every epoch (the trials' intermediate values); a trial's value is its best epoch's.",
        "",
        f"**Task:** {spec.task}, model `{spec.model.name_or_path}`. **Data** (rows): {sizes}.",
    ]
    prevalence = facts.get("train_prevalence") or {}
    if prevalence:
        lines += ["", "| label | share of train |", "|---|---|", *(f"| {k} | {v:.3f} |" for k, v in prevalence.items())]
    lines += ["", "### Spec", "```yaml", spec_text.rstrip(), "```"]
    return "\n".join(lines)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("%s %s", self.address_string(), format % args)


def make_dashboard_server(storage_url: str, host: str, port: int, artifact_dir: Path) -> WSGIServer:
    """Bind the dashboard to host:port now; `serve_forever()` serves it."""
    import optuna_dashboard

    _check_exists(storage_url)
    storage = open_storage(storage_url, heartbeat_interval=None)
    app = optuna_dashboard.wsgi(storage, artifact_store=artifact_store(artifact_dir))
    try:
        return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as e:
        raise HpoError(f"cannot listen on {host}:{port}: {e.strerror or e}; choose another with --port (make dashboard PORT=...)") from e


def _check_exists(storage_url: str) -> None:
    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") and not Path(url.database).is_file():
        raise HpoError(f"no study database at {url.database}: run `make study` first, or pass --storage (make dashboard STORAGE=...)")


def dashboard_url(server: WSGIServer) -> str:
    host, port = server.server_address[:2]
    shown = socket.gethostname() if host in ("0.0.0.0", "") else host
    return f"http://{shown}:{port}/dashboard"


def serve(storage_url: str, host: str, port: int, artifact_dir: Path) -> None:
    """Serve until Ctrl-C or SIGTERM."""
    server = make_dashboard_server(storage_url, host, port, artifact_dir)
    print(f"optuna-dashboard for {redact(storage_url)}, artifacts in {artifact_dir}", flush=True)
    if not _is_loopback(host):
        print(f"warning: listening on {host}: anyone who can reach this machine can read and change the studies", flush=True)
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
