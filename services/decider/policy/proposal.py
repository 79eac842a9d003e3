"""A change proposed for one resource of one container, before the gates and caps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from services.decider.policy.state import ResourceState
from shared.config import ScalingPolicy
from shared.models import Scalar

Resource = Literal["cpu", "memory"]
Direction = Literal["up", "down"]
# threshold: the original's proportional steps; energy: off-peak floor; boost/revert: boost mode.
Kind = Literal["threshold", "energy", "boost", "revert"]
RESOURCES: tuple[Resource, Resource] = ("cpu", "memory")


@dataclass(frozen=True)
class Proposal:
    resource: Resource
    current: int
    target: int
    direction: Direction
    kind: Kind
    rule: str
    why: str  # one human fragment, e.g. "cpu 95.0% > 80%"
    state: ResourceState  # the resource's state if this change is carried out
    notes: tuple[str, ...] = ()
    facts: Mapping[str, Scalar] = field(default_factory=dict)

    def capped(self, target: int, note: str) -> Proposal:
        return replace(self, target=target, notes=(*self.notes, note))


@dataclass(frozen=True)
class Bounds:
    minimum: int
    maximum: int | None

    def clamp(self, value: int) -> int:
        if self.maximum is not None and value > self.maximum:
            value = self.maximum
        return max(self.minimum, value)


def bounds_for(resource: Resource, policy: ScalingPolicy) -> Bounds:
    if resource == "cpu":
        return Bounds(policy.min_cores, policy.max_cores)
    return Bounds(policy.min_memory, policy.max_memory)


def unit_label(resource: Resource) -> tuple[str, str]:
    return ("cores", "") if resource == "cpu" else ("memory", " MB")
