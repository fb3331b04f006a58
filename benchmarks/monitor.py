"""What a benchmark run holds while it runs: PostgreSQL's client connections and the memory of
every process the benchmark started (workers, their forkservers and trial processes, the proxy).

Sampled from a thread: connections every 0.5 s over the server's unix socket as its superuser
(a reserved slot, so sampling works even when the workers have used up the rest, and never
counted), memory every few seconds from /proc (PSS shares each page among the processes that
map it; RSS counts shared pages once per process).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_APP = (
    "hpo-bench"  # application_name of the benchmark's own connections, which are not counted
)
_CONNECTIONS = (
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
    "AND pid <> pg_backend_pid() AND application_name <> %s"
)


@dataclass
class Peaks:
    connections: int = 0
    pss_gb: float = 0.0
    rss_gb: float = 0.0
    processes: int = 0
    connect_errors: int = 0  # samples refused by the server


class Monitor:
    """Start it before the workers, `stop()` after: `peaks` holds the maxima seen."""

    def __init__(
        self, socket_dir: Path | None, port: int | None, memory_every_s: float = 3.0
    ) -> None:
        self.socket_dir, self.port, self.memory_every_s = socket_dir, port, memory_every_s
        self.peaks = Peaks()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="monitor")

    def __enter__(self) -> Monitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        conn = self._connect()
        next_memory = 0.0
        while not self._stop.is_set():
            if conn is not None:
                self._sample_connections(conn)
            if time.monotonic() >= next_memory:
                self._sample_memory()
                next_memory = time.monotonic() + self.memory_every_s
            self._stop.wait(0.5)
        if conn is not None:
            conn.close()

    def _sample_connections(self, conn) -> None:
        import psycopg

        try:
            self.peaks.connections = max(
                self.peaks.connections, conn.execute(_CONNECTIONS, (BENCH_APP,)).fetchone()[0]
            )
        except psycopg.Error:
            self.peaks.connect_errors += 1

    def _connect(self):
        if self.socket_dir is None:
            return None
        from testing.pg_server import superuser_connection

        return superuser_connection(self.socket_dir, self.port)

    def _sample_memory(self) -> None:
        pss = rss = 0
        pids = descendants(os.getpid())
        for pid in pids:
            try:
                fields = dict(
                    line.split(":", 1)
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
                )
            except (OSError, ValueError):
                continue  # it ended meanwhile
            pss += int(fields["Pss"].split()[0])
            rss += int(fields["Rss"].split()[0])
        self.peaks.pss_gb = max(self.peaks.pss_gb, pss / 2**20)
        self.peaks.rss_gb = max(self.peaks.rss_gb, rss / 2**20)
        self.peaks.processes = max(self.peaks.processes, len(pids))


def descendants(root: int) -> list[int]:
    """Every live process under `root` (not `root` itself), from /proc's parent links."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found
