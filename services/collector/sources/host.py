"""The host's own size: CPUs online and total memory, from files under the root."""

from __future__ import annotations

from pathlib import Path

from services.collector.parsing import parse_cpu_list_count, parse_meminfo_total_mb
from services.collector.sources.base import SourceError
from services.collector.sources.confine import confined

CPU_ONLINE = "sys/devices/system/cpu/online"
MEMINFO = "proc/meminfo"


def read_host(root: Path) -> tuple[int, int]:
    """(cores, memory in MB); without them no capacity can be judged, so failure is an error."""
    cores_path = confined(root, CPU_ONLINE)
    memory_path = confined(root, MEMINFO)
    try:
        cores = parse_cpu_list_count(cores_path.read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot read the host's CPUs from {cores_path}: {exc}") from exc
    try:
        memory_mb = parse_meminfo_total_mb(memory_path.read_text())
    except (OSError, ValueError, IndexError) as exc:
        raise SourceError(f"cannot read the host's memory from {memory_path}: {exc}") from exc
    if memory_mb < 16:
        raise SourceError(f"{memory_path}: MemTotal of {memory_mb} MB is not plausible")
    return cores, memory_mb
