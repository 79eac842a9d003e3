"""Read the node's containers through the Proxmox REST API, for a collector off the node.

Per cycle: `GET /nodes/{node}/status` (host CPUs and memory), `GET /cluster/resources
?type=vm` (status, CPU and memory use of every guest, as `pvesh` shows it) and, for each
of this node's containers, `GET /nodes/{node}/lxc/{vmid}/config?current=1`, because
`maxcpu` in the resource list is the host's CPU count when a container has no `cores`
line: cores come only from the config, never guessed. A container whose config cannot
be read, or that the resource list reports without figures (pvestatd's data is stale,
status `unknown`), is left out of the sample with the reason, never filled in.
Needs `VM.Audit` on /vms and `Sys.Audit` on /nodes/{node} (the PVEAuditor role).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from services.collector.pvesh_format import MIB, parse_cluster_resources
from services.collector.raw import ConfValues, RawContainer, RawNode
from services.collector.sources.base import SourceError, SourceLabel
from shared.proxmox_api import ApiReply, ApiTimeout, ApiTlsRefused, ApiUnreachable, ProxmoxApi
from shared.validation import check_node_name, sanitize


class ApiSource:
    def __init__(self, node: str, api: ProxmoxApi, *, timeout_s: float = 10.0) -> None:
        self.node = check_node_name(node)
        self.api = api
        self.timeout_s = timeout_s
        self.label: SourceLabel = "api"

    def read(self) -> RawNode:
        cores, memory_mb = self._host()
        listed = self._get("/cluster/resources", {"type": "vm"})
        containers, skipped = parse_cluster_resources(json.dumps(listed), self.node)
        for entry in listed if isinstance(listed, list) else []:
            if _is_stale(entry, self.node):
                skipped[f"vmid {entry.get('vmid')}"] = "no current figures from pvestatd (status unknown)"
        read: list[RawContainer] = []
        for container in containers:
            try:
                conf = self._conf(container.vmid)
            except SourceError as exc:
                skipped[f"vmid {container.vmid}"] = sanitize(str(exc), 300)
                continue
            read.append(replace(container, conf=conf))
        return RawNode(cores, memory_mb, read, skipped)

    def _host(self) -> tuple[int, int]:
        status = self._get(f"/nodes/{self.node}/status")
        cpus = (status.get("cpuinfo") or {}).get("cpus") if isinstance(status, dict) else None
        total = (status.get("memory") or {}).get("total") if isinstance(status, dict) else None
        if not isinstance(cpus, int) or cpus < 1 or not isinstance(total, int) or total < 16 * MIB:
            raise SourceError(f"node status of {self.node} has no usable cpuinfo.cpus or memory.total")
        return cpus, total // MIB

    def _conf(self, vmid: int) -> ConfValues:
        data = self._get(f"/nodes/{self.node}/lxc/{vmid}/config", {"current": "1"})
        if not isinstance(data, dict):
            raise SourceError(f"config of CT {vmid} is not an object")
        return ConfValues(
            cores=_int(data.get("cores")),
            memory_mb=_int(data.get("memory")) or 512,  # Proxmox's default when unset
            swap_mb=_int(data.get("swap")),
            cpulimit=_float(data.get("cpulimit")) or None,
            hostname=sanitize(data["hostname"], 255) if isinstance(data.get("hostname"), str) else None,
            tags=tuple(t for t in str(data.get("tags") or "").replace(",", ";").split(";") if t),
            lock=sanitize(data["lock"], 64) if isinstance(data.get("lock"), str) else None,
        )

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            reply: ApiReply = self.api.request("GET", path, params, timeout_s=self.timeout_s)
        except (ApiUnreachable, ApiTimeout, ApiTlsRefused) as exc:
            raise SourceError(f"Proxmox API {self.api.endpoint.describe()}: {exc}") from exc
        if not reply.ok:
            raise SourceError(f"GET {path}: {sanitize(reply.error_text(), 300)}")
        return reply.data


def _is_stale(entry: Any, node: str) -> bool:
    return (
        isinstance(entry, dict) and entry.get("type") == "lxc" and entry.get("node") == node
        and entry.get("status") == "unknown"
    )  # fmt: skip


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
