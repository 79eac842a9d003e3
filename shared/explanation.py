"""What the policy says about one container right now: the contract between the
decider's pure core (which computes it, services/decider/explain.py) and the console
(which shows it). The console imports only this module; `cli/console.py` hands it the
decider's function, so both always run the same `decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict

from shared.models import GroupIntent, NodeSample, ResourceSize, Scalar, ScaleIntent
from shared.pauses import PauseEntry

Verdict = Literal["scale-up", "scale-down", "resize", "pending", "hold", "none", "ignored"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceTimers(_Model):
    """Seconds left on the sample clock; None when nothing is running."""

    cooldown_up_left_s: float | None = None
    cooldown_down_left_s: float | None = None
    stabilization_left_s: float | None = None
    scale_up_sustain_left_s: float | None = None  # above the upper threshold, not for long enough yet
    boost_original: int | None = None  # while boosted: the size to return to
    boost_left_s: float | None = None


class ContainerExplanation(_Model):
    vmid: int
    tier: str | None
    verdict: Verdict
    target: ResourceSize | None = None
    rule: str | None = None
    reason: str
    pending: ScaleIntent | None = None
    pause: PauseEntry | None = None  # the operator pause in force, if any
    pause_scope: Literal["tier", "global", "node", "container"] | None = None
    warmup_left_s: float | None = None
    cpu: ResourceTimers = ResourceTimers()
    memory: ResourceTimers = ResourceTimers()
    thresholds: dict[str, Scalar] = {}


class GroupMemberExplanation(_Model):
    vmid: int
    kind: Literal["source", "listed", "clone"]
    node: str | None  # None: no sample and no record places it
    running: bool
    ready: bool  # running past the readiness gate: it counts in the group's averages
    node_stale: bool  # its node's latest sample is stale or missing


class GroupExplanation(_Model):
    """What the deciders see of one horizontal group and would do now."""

    group: str
    members: tuple[GroupMemberExplanation, ...]
    decision: str  # the decision, or why there is none
    intent: GroupIntent | None = None  # the intent they would publish now


class ExplainGroups(Protocol):
    """`samples`: the latest sample of every node; `records`: the `autoscale_groups`
    bucket by key; `policy`: the `autoscale_policy` bucket by key."""

    def __call__(
        self,
        samples: Mapping[str, NodeSample],
        records: Mapping[str, bytes],
        policy: Mapping[str, bytes],
        now: datetime,
    ) -> dict[str, GroupExplanation]: ...


class Explain(Protocol):
    """`states` maps vmid to the raw KV value of `autoscale_state` for the sample's node;
    `policy` maps KV key to the raw value of `autoscale_policy` (pauses, dry-run switch)."""

    def __call__(
        self,
        sample: NodeSample,
        states: Mapping[int, bytes],
        policy: Mapping[str, bytes],
        now: datetime,
    ) -> dict[int, ContainerExplanation]: ...
