"""Network namespaces as separate machines: one "server" namespace and worker namespaces, each
joined to the server by a veth pair of its own, with addresses in 10.231.0.0/24 that exist only
inside these namespaces. Nothing here routes anywhere else; everything is removed on close.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.231.0"  # /30 links inside 10.231.0.0/24: server .4k+1, worker .4k+2


class NetnsUnavailable(RuntimeError):
    """Not root, or the kernel (or the container) refuses network namespaces."""


@dataclass
class Link:
    namespace: str  # the worker's
    veth: str  # the worker's end
    server_ip: str  # the server's address on this link
    worker_ip: str


@dataclass
class Lab:
    server: str  # the server's namespace
    links: list[Link] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)  # every one created, for close

    def add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.namespaces.append(name)

    def run(self, namespace: str, *cmd: str) -> None:
        ip("netns", "exec", namespace, *cmd)

    def cut(self, link: Link) -> None:
        self.run(link.namespace, "ip", "link", "set", link.veth, "down")

    def restore(self, link: Link) -> None:
        self.run(link.namespace, "ip", "link", "set", link.veth, "up")

    def close(self) -> None:
        for namespace in self.namespaces:
            subprocess.run(
                ["ip", "netns", "delete", namespace], capture_output=True
            )  # its veth ends go with it


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise NetnsUnavailable(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.returncode}"
        )


def build_lab(n_workers: int) -> Lab:
    """The server namespace and `n_workers` worker namespaces, each linked to the server."""
    if os.geteuid() != 0:
        raise NetnsUnavailable("network namespaces need root")
    tag = os.getpid() % 100_000
    lab = Lab(server=f"hpo-srv-{tag}")
    try:
        lab.add_namespace(lab.server)
        lab.run(lab.server, "ip", "link", "set", "lo", "up")
        for k in range(n_workers):
            lab.links.append(_link(lab, k, tag))
    except BaseException:
        lab.close()
        raise
    return lab


def _link(lab: Lab, k: int, tag: int) -> Link:
    link = Link(
        f"hpo-w{k}-{tag}", f"hw{k}w{tag}", f"{SUBNET}.{4 * k + 1}", f"{SUBNET}.{4 * k + 2}"
    )
    server_end = f"hw{k}s{tag}"
    lab.add_namespace(link.namespace)
    ip(
        "link",
        "add",
        server_end,
        "netns",
        lab.server,
        "type",
        "veth",
        "peer",
        "name",
        link.veth,
        "netns",
        link.namespace,
    )
    lab.run(lab.server, "ip", "addr", "add", f"{link.server_ip}/30", "dev", server_end)
    lab.run(lab.server, "ip", "link", "set", server_end, "up")
    lab.run(link.namespace, "ip", "addr", "add", f"{link.worker_ip}/30", "dev", link.veth)
    lab.run(link.namespace, "ip", "link", "set", link.veth, "up")
    lab.run(link.namespace, "ip", "link", "set", "lo", "up")
    return link
