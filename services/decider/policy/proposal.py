"""A change proposed for one resource of one container, before the gates and caps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from services.decider.policy.resource import Resource
from services.decider.policy.state import ResourceState
from shared.models import Scalar

Direction = Literal["up", "down"]
# threshold: the original's proportional steps; energy: off-peak floor; boost/revert: boost
# mode; oom: OOM kills since the last sample.
ProposalKind = Literal["threshold", "energy", "boost", "revert", "oom"]


@dataclass(frozen=True)
class Proposal:
    resource: Resource
    current: int
    target: int
    direction: Direction
    kind: ProposalKind
    rule: str
    why: str  # one human fragment, e.g. "cpu 95.0% > 80%"
    state: ResourceState  # the resource's state if this change is carried out
    notes: tuple[str, ...] = ()
    facts: Mapping[str, Scalar] = field(default_factory=dict)

    def capped(self, target: int, note: str) -> Proposal:
        return replace(self, target=target, notes=(*self.notes, note))
