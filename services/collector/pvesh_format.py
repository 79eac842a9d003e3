"""Parse `pvesh get /cluster/resources --type vm --output-format json` for one node.

Fields as pve-manager's API schema documents them: `type` (qemu|lxc), `vmid`, `node`,
`status`, `name`, `cpu` ("CPU utilization", a fraction of `maxcpu`), `maxcpu`
("Number of available CPUs"), `mem` ("Used memory in bytes"), `maxmem`, `uptime`,
`tags`, `lock`, `template`. Proxmox computes `mem` with the page cache already left out.

What pvestatd broadcasts, every 10 s (pve-manager `pvestatd.pm`, `API2Tools.pm`
`extract_vm_stats`): `maxcpu` is `cores || cpulimit || host CPUs` (1.5 for a lone
`cpulimit: 1.5`), so it is never taken for `cores`: those come from the node's config
files (`confs`), or are reported missing. A guest pvestatd has not seen yet has status
`unknown` and no figures: it is left out with the reason. The first pass after a start
reports `cpu` 0 (no previous reading): a 0 within `FIRST_PASS_UPTIME_S` of the start is
reported missing (`first-sample`), not as an idle container.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from services.collector.parsing import MAX_COUNTER
from services.collector.raw import ConfValues, FloatOrMissing, IntOrMissing, RawContainer
from shared.models import MissingReason
from shared.validation import VMID_MAX, VMID_MIN, sanitize

MIB = 1024 * 1024
# pvestatd's first pass after a start comes at most one period (10 s) later; allow two.
FIRST_PASS_UPTIME_S = 20.0


def parse_cluster_resources(
    text: str | bytes, node: str, confs: Mapping[int, ConfValues] | None = None
) -> tuple[list[RawContainer], dict[str, str]]:
    """This node's containers, and the entries that had to be left out with why.

    `confs` are the node's container configs by vmid; a container without one gets
    `cores_missing`. Without `confs` at all the caller fills in each config itself."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"pvesh output is not JSON: {exc}") from exc
    if not isinstance(document, list):
        raise ValueError(f"pvesh output is a {type(document).__name__}, expected a list")
    containers: list[RawContainer] = []
    skipped: dict[str, str] = {}
    for position, item in enumerate(document):
        if not isinstance(item, dict) or item.get("type") != "lxc" or item.get("node") != node:
            continue
        if item.get("template") in (1, True, "1"):
            continue  # a template never runs and is never scaled
        if item.get("status") == "unknown":
            skipped[f"vmid {item.get('vmid')}"] = "pvestatd has not reported it yet (status unknown)"
            continue
        try:
            containers.append(_container(item, confs))
        except ValueError as exc:
            vmid = item.get("vmid")
            key = f"vmid {vmid}" if isinstance(vmid, int) else f"entry #{position}"
            skipped[key] = sanitize(str(exc))
    return containers, skipped


def _container(item: dict[str, Any], confs: Mapping[int, ConfValues] | None) -> RawContainer:
    vmid = item.get("vmid")
    if isinstance(vmid, bool) or not isinstance(vmid, int) or not VMID_MIN <= vmid <= VMID_MAX:
        raise ValueError(f"vmid {sanitize(repr(vmid), 40)} is not a valid container id")
    maxcpu = _number(item.get("maxcpu"))
    maxmem = _number(item.get("maxmem"))
    if maxcpu is None or maxcpu <= 0:
        raise ValueError(f"maxcpu {sanitize(repr(item.get('maxcpu')), 40)} is not a CPU count")
    if maxmem is None or maxmem < 16 * MIB:
        raise ValueError(f"maxmem {sanitize(repr(item.get('maxmem')), 40)} is not a memory size")
    known = confs.get(vmid) if confs is not None else None
    conf = known or ConfValues(
        cores=None,  # unknown: never taken from maxcpu, which may be cpulimit or the host's count
        memory_mb=int(maxmem // MIB),
        hostname=_text(item.get("name"), 255),
        tags=_tags(item.get("tags")),
        lock=_text(item.get("lock"), 64),
    )
    cores_missing: MissingReason | None = "unreadable" if confs is not None and known is None else None
    if item.get("status") != "running":
        return RawContainer(vmid, conf, running=False, cores_missing=cores_missing)
    uptime = _number(item.get("uptime"))
    uptime_s = uptime if uptime is not None and uptime >= 0 else None
    return RawContainer(
        vmid,
        conf,
        running=True,
        cpu_pct=_cpu_pct(item, uptime_s),
        memory_current=_bytes(item, "mem"),
        memory_max=int(maxmem),
        memory_cache_excluded=True,
        uptime_s=uptime_s,
        cpu_maxcpu=maxcpu,
        cores_missing=cores_missing,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _cpu_pct(item: dict[str, Any], uptime_s: float | None) -> FloatOrMissing:
    """Proxmox's figure as a percentage of `maxcpu`."""
    if "cpu" not in item:
        return "not-reported"
    fraction = _number(item["cpu"])
    if fraction is None or fraction < 0:
        return "garbage"
    if fraction == 0 and uptime_s is not None and uptime_s < FIRST_PASS_UPTIME_S:
        return "first-sample"  # pvestatd's first pass after the start: no reading yet
    return fraction * 100.0


def _bytes(item: dict[str, Any], key: str) -> IntOrMissing:
    if key not in item:
        return "not-reported"
    value = item[key]
    if isinstance(value, str) and value.isdigit():  # older APIs typed `mem` as a string
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNTER:
        return "garbage"
    return value


def _text(value: Any, limit: int) -> str | None:
    return sanitize(value, limit)[:limit] if isinstance(value, str) and value else None


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        return ()
    parts = value.replace(",", ";").replace(" ", ";").split(";")
    return tuple(t for t in parts if t and len(t) <= 64 and t.isprintable())
