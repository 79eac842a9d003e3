"""What a source read, before any arithmetic: counters, limits and configuration.

A field that could not be read holds a `MissingReason` string instead of a number,
so the reason travels with the gap all the way into the published sample.
Plain slotted dataclasses: a cycle builds a thousand of these and must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models import MissingReason

# A counter or limit, or the reason it is missing.
IntOrMissing = int | MissingReason
FloatOrMissing = float | MissingReason


@dataclass(frozen=True, slots=True)
class ConfValues:
    """The keys of `/etc/pve/lxc/<vmid>.conf` the autoscaler cares about."""

    cores: int | None = None  # None: no `cores` line, the container may use every host CPU
    memory_mb: int = 512  # Proxmox's default when the line is absent
    swap_mb: int | None = None
    cpulimit: float | None = None  # None or 0: no CPU time limit
    hostname: str | None = None
    tags: tuple[str, ...] = ()
    lock: str | None = None


@dataclass(slots=True)
class RawContainer:
    vmid: int
    conf: ConfValues
    running: bool
    # Identity of the cgroup directory (its inode): a new one means the container restarted.
    cgroup_id: int | None = None
    # Cumulative CPU time from cpu.stat (cgroup sources); None when the source gives a percentage.
    cpu_usage_usec: IntOrMissing | None = None
    # CPU already as a percentage of `cpu_maxcpu` (pvesh); None for counter sources.
    cpu_pct: FloatOrMissing | None = None
    memory_current: IntOrMissing = "not-reported"
    memory_max: IntOrMissing = "not-reported"  # "no-limit" when memory.max says "max"
    memory_file: IntOrMissing = "not-reported"  # page cache, memory.stat `file`
    # True when the source's memory figure already leaves the page cache out (pvesh).
    memory_cache_excluded: bool = False
    cpu_pressure_some_avg10: float | None = None
    memory_pressure_some_avg10: float | None = None
    oom_kills: int | None = None  # memory.events oom_kill, cumulative for this cgroup
    uptime_s: float | None = None  # reported by pvesh; cgroup files have no start time
    cpuset_cpus: int | None = None  # CPUs in cpuset.cpus.effective (cgroup sources)
    # The `maxcpu` that `cpu_pct` is relative to (pvesh: cores || cpulimit || host CPUs).
    cpu_maxcpu: float | None = None
    cores_missing: MissingReason | None = None  # the config's cores could not be read


@dataclass(slots=True)
class RawNode:
    host_cores: int
    host_memory_mb: int
    containers: list[RawContainer] = field(default_factory=list)
    # Containers left out of the sample ("vmid 101" or "entry #3" → why): bad config and the like.
    skipped: dict[str, str] = field(default_factory=dict)
