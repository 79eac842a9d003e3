"""One resource of one container as the policy pieces read it: the reading, the size,
the tier's limits and thresholds, the step formulas and the resource's stored state.

Everything that differs between cores and memory is in `_SPECS`; the threshold, boost
and energy steps, admission and the intent builder work on a `ResourceView` and never
ask which resource they hold. Adding a resource is one entry here (plus its field in
`ContainerState` and on the wire).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from services.decider.policy.state import ContainerState, ResourceState
from services.decider.policy.steps import (
    cpu_down_target,
    cpu_up_increment,
    memory_down_target,
    memory_up_increment,
)
from services.decider.policy.thresholds import is_above, is_below
from shared.config import ScalingPolicy
from shared.models import ContainerReading, ResourceSize

Resource = Literal["cpu", "memory"]
RESOURCES: tuple[Resource, ...] = ("cpu", "memory")


@dataclass(frozen=True)
class Bounds:
    minimum: int
    maximum: int | None

    def clamp(self, value: int) -> int:
        if self.maximum is not None and value > self.maximum:
            value = self.maximum
        return max(self.minimum, value)


@dataclass(frozen=True)
class _Spec:
    label: tuple[str, str]  # as the human line names it, and its unit
    usage: Callable[[ContainerReading], float | None]
    size: Callable[[ResourceSize | ContainerReading], int]
    state: Callable[[ContainerState], ResourceState]
    limits: Callable[[ScalingPolicy], tuple[Bounds, float, float]]  # bounds, upper, lower threshold
    # (usage, current, policy, behaviour multiplier) -> size wanted by a step up / recommended down
    grown: Callable[[float, int, ScalingPolicy, float], int]
    shrunk: Callable[[float, int, ScalingPolicy, float], int]
    # True when growing cannot help because something else caps the container first
    held_back: Callable[[ContainerReading], bool]
    # (reading, host CPUs) -> why growing must wait for the last change to take effect
    waiting: Callable[[ContainerReading, int | None], str | None]
    used: Callable[[ContainerReading], float | None]  # MB in use (memory), else None
    headroom: Callable[[ScalingPolicy], int]  # kept above the recent use when shrinking


# Fields in the order of _Spec: label, usage, size, state, limits, grown, shrunk, held_back,
# waiting, used, headroom.
_SPECS: Mapping[Resource, _Spec] = {
    "cpu": _Spec(
        ("cores", ""),
        lambda r: r.cpu_pct,
        lambda s: s.cores,
        lambda s: s.cpu,
        lambda p: (Bounds(p.min_cores, p.max_cores), p.cpu_upper_threshold, p.cpu_lower_threshold),
        lambda u, cur, p, _m: cur + cpu_up_increment(u, p),
        lambda u, cur, p, _m: cpu_down_target(u, cur, p),
        lambda r: bool(r.cpulimit) and (r.cpulimit or 0) < r.cores,  # Proxmox's cpulimit is lower
        lambda r, host: _cores_not_enacted(r, host),
        lambda _r: None,
        lambda _p: 0,
    ),
    "memory": _Spec(
        ("memory", " MB"),
        lambda r: r.memory_pct,
        lambda s: s.memory_mb,
        lambda s: s.memory,
        lambda p: (Bounds(p.min_memory, p.max_memory), p.memory_upper_threshold, p.memory_lower_threshold),
        lambda u, cur, p, m: cur + memory_up_increment(u, p, m),
        lambda u, cur, p, m: memory_down_target(u, cur, p, m),
        lambda _r: False,
        lambda _r, _host: None,
        lambda r: r.memory_used_mb if r.memory_used_mb is not None else _used_from_pct(r),
        lambda p: p.memory_min_increment,  # headroom: one step above the recent peak
    ),
}


def _used_from_pct(reading: ContainerReading) -> float | None:
    if reading.memory_pct is None:
        return None
    return reading.memory_pct * reading.memory_mb / 100.0


def _cores_not_enacted(reading: ContainerReading, host_cores: int | None) -> str | None:
    """Proxmox enacts `cores` only at pvestatd's next cpuset rebalance (every 10 s; capped
    at the host's CPUs): until then the container runs on fewer CPUs than configured."""
    if reading.cpuset_cpus is None:
        return None
    enacted = min(reading.cores, host_cores) if host_cores else reading.cores
    if reading.cpuset_cpus >= enacted:
        return None
    return (
        f"cores {reading.cores} not enacted yet: the cpuset holds {reading.cpuset_cpus} CPUs "
        "until pvestatd rebalances (within 10 s)"
    )


@dataclass(frozen=True)
class ResourceView:
    name: Resource
    usage: float | None  # percent; None when the reading is missing (never act on it)
    current: int  # cores or MB now
    bounds: Bounds  # the tier's minimum and maximum
    upper: float
    lower: float
    state: ResourceState  # what the decider remembers about this resource
    policy: ScalingPolicy
    multiplier: float  # behaviour multiplier (x0.8 off-peak)
    held_back: bool
    covers_s: float  # seconds of load the reading stands for: the sample's interval
    waiting: str | None = None  # why a growth must wait for the last change to take effect
    used: float | None = None  # MB in use now (memory)
    headroom: int = 0  # MB kept above the recent peak use when shrinking (memory)
    oom_kills: int = 0  # OOM kills since the last sample (memory)

    def above(self, usage: float) -> bool:
        return is_above(usage, self.upper, self.policy.tolerance)

    def below(self, usage: float) -> bool:
        return is_below(usage, self.lower, self.policy.tolerance)

    def saturated(self, usage: float) -> bool:
        """Using (nearly) everything it is allowed: the container is starved now."""
        return usage >= self.policy.saturation_threshold * 100

    def grown(self, usage: float) -> int:
        """The size one threshold step up asks for (before the tier's maximum)."""
        return _SPECS[self.name].grown(usage, self.current, self.policy, self.multiplier)

    def shrunk(self, usage: float) -> int:
        """The size one threshold step down recommends (already at or above the floor)."""
        return _SPECS[self.name].shrunk(usage, self.current, self.policy, self.multiplier)


def resource_views(
    reading: ContainerReading,
    policy: ScalingPolicy,
    state: ContainerState,
    multiplier: float,
    interval_s: float,
    host_cores: int | None = None,
) -> tuple[ResourceView, ...]:
    views = []
    for name in RESOURCES:
        spec = _SPECS[name]
        bounds, upper, lower = spec.limits(policy)
        views.append(
            ResourceView(
                name=name,
                usage=spec.usage(reading),
                current=spec.size(reading),
                bounds=bounds,
                upper=upper,
                lower=lower,
                state=spec.state(state),
                policy=policy,
                multiplier=multiplier,
                held_back=spec.held_back(reading),
                covers_s=interval_s,
                waiting=spec.waiting(reading, host_cores),
                used=spec.used(reading),
                headroom=spec.headroom(policy),
                oom_kills=(reading.oom_kills or 0) if name == "memory" else 0,
            )
        )
    return tuple(views)


def label_of(resource: Resource) -> tuple[str, str]:
    """How the human line names the resource, and its unit."""
    return _SPECS[resource].label


def size_of(resource: Resource, size: ResourceSize | ContainerReading) -> int:
    return _SPECS[resource].size(size)


def sized(sizes: Mapping[Resource, int]) -> ResourceSize:
    """The wire size from one figure per resource."""
    return ResourceSize(cores=sizes["cpu"], memory_mb=sizes["memory"])


def states(kept: Mapping[Resource, ResourceState]) -> dict[str, ResourceState]:
    """The `ContainerState` fields from one state per resource."""
    return {"cpu": kept["cpu"], "memory": kept["memory"]}
