"""One `pvesh get /cluster/resources` call per cycle, for every container of this node,
with each container's `cores`/`cpulimit`/`memory` from its config file
(`/etc/pve/lxc/<vmid>.conf`; pmxcfs is local on every node), never from `maxcpu`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.collector.pvesh_format import parse_cluster_resources
from services.collector.raw import RawNode
from services.collector.sources.base import SourceError, SourceLabel
from services.collector.sources.configs import ConfigReader
from services.collector.sources.confine import resolve_root
from services.collector.sources.host import read_host
from shared.validation import check_node_name, sanitize

PVESH_ARGS = ("get", "/cluster/resources", "--type", "vm", "--output-format", "json")


class PveshSource:
    def __init__(self, node: str, root: Path, *, binary: str = "pvesh", timeout_s: float = 10.0) -> None:
        self.node = check_node_name(node)
        self.root = resolve_root(root)
        self.binary = binary
        self.timeout_s = timeout_s
        self.label: SourceLabel = "pvesh"
        self._configs = ConfigReader(self.root)

    def command(self) -> list[str]:
        return [self.binary, *PVESH_ARGS]

    def read(self) -> RawNode:
        cores, memory_mb = read_host(self.root)
        try:
            done = subprocess.run(self.command(), capture_output=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise SourceError(f"pvesh did not answer within {self.timeout_s:g} s") from exc
        except OSError as exc:
            raise SourceError(f"cannot run {self.binary}: {exc.strerror}") from exc
        if done.returncode != 0:
            detail = sanitize(done.stderr.decode(errors="replace").strip(), 300)
            raise SourceError(f"pvesh exited with {done.returncode}: {detail}")
        unreadable: dict[str, str] = {}
        try:
            confs = self._configs.read(unreadable)
        except SourceError:
            confs = {}  # no config at all: every container's cores are reported missing
        try:
            containers, skipped = parse_cluster_resources(done.stdout, self.node, confs)
        except ValueError as exc:
            raise SourceError(str(exc)) from exc
        return RawNode(cores, memory_mb, containers, skipped)
