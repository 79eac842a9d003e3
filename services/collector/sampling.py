"""Raw readings + the previous cycle's counters → percentages and host totals.

Pure: time comes in as a monotonic `now` argument. A figure that cannot be computed
is None with a reason, never 0, so a decider can tell "idle" from "unknown".

CPU % = Δusage_usec / (Δt · 1e6 · capacity) · 100, where capacity = min(CPUs of its
cpuset, cores, cpulimit): 100 % means "using everything it can use now" (a cores change
takes effect only when pvestatd rebalances the cpuset). Proxmox's own figure, over
cores || cpulimit || host CPUs (`vmstatus`), travels beside it as `cpu_pct_proxmox`.
Memory % = (memory.current − page cache if memory_exclude_cache) / memory.max · 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.collector.raw import RawContainer, RawNode
from shared.models import ContainerReading, HostTotals, MissingReason

MIB = 1024 * 1024
# A CPU counter may run ahead of wall time only a little (clock granularity, Δt rounding);
# beyond this the counter is not trustworthy and the reading is "garbage".
_CPU_OVERRUN_TOLERANCE = 1.10


@dataclass(frozen=True, slots=True)
class SamplingSettings:
    memory_exclude_cache: bool = True
    ignore: frozenset[int] = frozenset()


@dataclass(slots=True)  # not frozen: a thousand are made per cycle, and frozen init is slower
class Previous:
    """What the next cycle needs to know about one running container."""

    usage_usec: int | None  # None: no usable counter yet
    at: float  # monotonic seconds when usage_usec was read
    cgroup_id: int | None
    running_since: float
    oom_kills: int | None = None  # memory.events oom_kill at the last sample


@dataclass(slots=True)
class SamplingResult:
    readings: list[ContainerReading]
    host: HostTotals
    # Only containers running now: memory stays bounded however many come and go.
    state: dict[int, Previous] = field(default_factory=dict)


def sample(
    node: RawNode, previous: dict[int, Previous], now: float, settings: SamplingSettings
) -> SamplingResult:
    readings: list[ContainerReading] = []
    state: dict[int, Previous] = {}
    for raw in sorted(node.containers, key=_vmid):
        if raw.vmid in settings.ignore:
            continue
        if not raw.running:
            readings.append(_stopped(raw, node.host_cores))
            continue
        reading, kept = _running(raw, previous.get(raw.vmid), now, node.host_cores, settings)
        readings.append(reading)
        state[raw.vmid] = kept
    return SamplingResult(readings=readings, host=host_totals(node), state=state)


def host_totals(node: RawNode) -> HostTotals:
    """Allocations count every container, ignored ones too: they hold host capacity all the same."""
    cores_all = memory_all = cores_running = memory_running = 0
    for raw in node.containers:
        cores = _cores(raw, node.host_cores)
        cores_all += cores
        memory_all += raw.conf.memory_mb
        if raw.running:
            cores_running += cores
            memory_running += raw.conf.memory_mb
    return HostTotals(
        cores=node.host_cores,
        memory_mb=node.host_memory_mb,
        allocated_cores_running=cores_running,
        allocated_memory_mb_running=memory_running,
        allocated_cores_all=cores_all,
        allocated_memory_mb_all=memory_all,
    )


def _vmid(raw: RawContainer) -> int:
    return raw.vmid


def _cores(raw: RawContainer, host_cores: int) -> int:
    # No `cores` line: Proxmox lets the container use every CPU of the host.
    return raw.conf.cores if raw.conf.cores is not None else host_cores


def _fields(raw: RawContainer, cores: int, status: str) -> dict[str, object]:
    """The reading's configuration part; measurements are added by the caller."""
    conf = raw.conf
    return {
        "vmid": raw.vmid,
        "hostname": conf.hostname,
        "status": status,
        "cores": min(cores, 8192),
        "memory_mb": conf.memory_mb,
        "swap_mb": conf.swap_mb,
        "cpulimit": conf.cpulimit,
        "tags": conf.tags,
        "lock": conf.lock,
    }


def _stopped(raw: RawContainer, host_cores: int) -> ContainerReading:
    fields = _fields(raw, _cores(raw, host_cores), "stopped")
    fields["cpu_missing"] = fields["memory_missing"] = "stopped"
    return ContainerReading.model_validate(fields)


def _running(
    raw: RawContainer,
    prev: Previous | None,
    now: float,
    host_cores: int,
    settings: SamplingSettings,
) -> tuple[ContainerReading, Previous]:
    cores = _cores(raw, host_cores)
    fields = _fields(raw, cores, "running")
    capacity = float(cores)
    if raw.conf.cpulimit:
        capacity = min(capacity, raw.conf.cpulimit)
    if raw.cpuset_cpus:
        capacity = min(capacity, float(raw.cpuset_cpus))
    used, fields["cpu_missing"], kept = _cpu(raw, prev, now, host_cores)
    if used is not None:
        fields["cpu_pct"] = _clamp(used / capacity * 100.0)
        fields["cpu_pct_proxmox"] = _clamp(used / _proxmox_cpus(raw, host_cores) * 100.0)
    fields["cpuset_cpus"] = raw.cpuset_cpus
    fields["cores_missing"] = raw.cores_missing
    fields["oom_kills"] = _new_kills(raw, prev, kept)
    fields["memory_pct"], fields["memory_used_mb"], fields["memory_missing"] = _memory(
        raw, settings.memory_exclude_cache
    )
    fields["cpu_pressure_some_avg10"] = raw.cpu_pressure_some_avg10
    fields["memory_pressure_some_avg10"] = raw.memory_pressure_some_avg10
    running_for = raw.uptime_s if raw.uptime_s is not None else now - kept.running_since
    fields["running_for_s"] = running_for if running_for > 0.0 else 0.0
    return ContainerReading.model_validate(fields), kept


def _proxmox_cpus(raw: RawContainer, host_cores: int) -> float:
    """`vmstatus`: `cpus = cores || cpulimit || host CPUs`."""
    return float(raw.conf.cores or raw.conf.cpulimit or host_cores)


def _new_kills(raw: RawContainer, prev: Previous | None, kept: Previous) -> int | None:
    """OOM kills since the last sample; the counter restarts with a new cgroup."""
    kept.oom_kills = raw.oom_kills
    if raw.oom_kills is None or prev is None or prev.oom_kills is None:
        return None
    if raw.cgroup_id != prev.cgroup_id or raw.oom_kills < prev.oom_kills:
        return raw.oom_kills  # restarted in between: every kill counted is new
    return raw.oom_kills - prev.oom_kills


def _cpu(
    raw: RawContainer, prev: Previous | None, now: float, host_cores: int
) -> tuple[float | None, MissingReason | None, Previous]:
    """CPUs' worth of use since the last sample (None with its reason when missing), and
    what to remember for the next cycle."""
    since = prev.running_since if prev is not None else now
    if raw.cpu_pct is not None:  # the source measured it already (pvesh)
        kept = Previous(None, now, raw.cgroup_id, since)
        if isinstance(raw.cpu_pct, str):
            return None, raw.cpu_pct, kept
        maxcpu = raw.cpu_maxcpu or _proxmox_cpus(raw, host_cores)
        return max(raw.cpu_pct, 0.0) / 100.0 * maxcpu, None, kept
    usage = raw.cpu_usage_usec
    if usage is None or isinstance(usage, str):
        # Keep the old counter: the next good read measures over the longer interval.
        kept = prev or Previous(None, now, raw.cgroup_id, since)
        return None, usage or "not-reported", kept
    if prev is None or prev.usage_usec is None:
        return None, "first-sample", Previous(usage, now, raw.cgroup_id, since)
    if raw.cgroup_id != prev.cgroup_id or usage < prev.usage_usec:
        # A new cgroup or a counter that went down: the container restarted in between.
        return None, "counter-reset", Previous(usage, now, raw.cgroup_id, now)
    kept = Previous(usage, now, raw.cgroup_id, since)
    elapsed = now - prev.at
    if elapsed <= 0:
        return None, "first-sample", prev
    delta = usage - prev.usage_usec
    if delta > elapsed * 1e6 * host_cores * _CPU_OVERRUN_TOLERANCE:
        return None, "garbage", kept
    return delta / (elapsed * 1e6), None, kept


def _memory(
    raw: RawContainer, exclude_cache: bool
) -> tuple[float | None, float | None, MissingReason | None]:
    """Memory %, used MiB and the reason when the percentage is missing."""
    current = raw.memory_current
    if isinstance(current, str):
        return None, None, current
    used = current
    if exclude_cache and not raw.memory_cache_excluded:
        cache = raw.memory_file
        if isinstance(cache, str):
            # Counting the cache as used is the original's bug #51: report nothing instead.
            return None, None, cache
        used = max(current - cache, 0)
    used_mb = used / MIB
    limit = raw.memory_max
    if isinstance(limit, str):
        return None, used_mb, limit
    return _clamp(used / limit * 100.0), used_mb, None


def _clamp(value: float) -> float:
    return 0.0 if value < 0.0 else 100.0 if value > 100.0 else round(value, 3)
