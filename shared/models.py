"""Wire models: every message on the bus, validated on the way in and out.

Each message carries `schema_version`; a consumer refuses versions it does not
know instead of guessing. JSON Schema for each model is exported to docs/schemas/.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.validation import GroupName, NodeName, Vmid

SCHEMA_VERSION: Literal[1] = 1
MAX_CONTAINERS_PER_SAMPLE = 10_000
MAX_SEQ = 2**63 - 1  # a collector counts samples from 0; nothing real comes near
# Datetimes every zone can represent: the year 9999 overflows once shifted to UTC or to a
# zone east of it, and the year 1 once shifted west.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000

Percent = Annotated[float, Field(ge=0.0, le=100.0)]
Cores = Annotated[int, Field(ge=1, le=8192)]
MemoryMb = Annotated[int, Field(ge=16, le=64 * 1024 * 1024)]
ShortText = Annotated[str, Field(max_length=2000)]
Scalar = str | int | float | bool | None


class WireModel(BaseModel):
    """Base of every message: strict about unknown fields, immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- node sample

MissingReason = Literal[
    "first-sample",  # no previous counter yet (collector start or container start)
    "counter-reset",  # usage went down: the container restarted
    "unreadable",  # file missing or permission denied
    "garbage",  # file present but not parseable
    "no-limit",  # memory.max is "max": no percentage possible
    "vanished",  # container disappeared during the read
    "not-reported",  # the source does not report it (e.g. pvesh without the guest)
    "stopped",
]


class ContainerReading(WireModel):
    vmid: Vmid
    hostname: Annotated[str, Field(max_length=255)] | None = None
    status: Literal["running", "stopped"]
    cores: Cores
    memory_mb: MemoryMb
    swap_mb: Annotated[int, Field(ge=0)] | None = None
    cpulimit: Annotated[float, Field(ge=0)] | None = None
    tags: tuple[Annotated[str, Field(max_length=64)], ...] = ()
    lock: Annotated[str, Field(max_length=64)] | None = None
    cpu_pct: Percent | None = None
    memory_pct: Percent | None = None
    memory_used_mb: Annotated[float, Field(ge=0)] | None = None
    cpu_missing: MissingReason | None = None
    memory_missing: MissingReason | None = None
    cpu_pressure_some_avg10: Percent | None = None
    memory_pressure_some_avg10: Percent | None = None
    oom_kills: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="OOM kills inside the container since the previous sample (the increase of "
        "memory.events oom_kill); None on the first sample or when the source cannot tell.",
    )
    cpuset_cpus: Annotated[int, Field(ge=1, le=8192)] | None = Field(
        default=None,
        description="CPUs the container may run on now (cpuset.cpus.effective). Fewer than "
        "`cores` while Proxmox's pvestatd has not yet enacted a cores change (up to 10 s).",
    )
    cpu_pct_proxmox: Percent | None = Field(
        default=None,
        description="Proxmox's own CPU figure, as the GUI and pvesh show it: use over "
        "cores || cpulimit || host CPUs. `cpu_pct` is use over what the container can "
        "really use now, min(cpuset, cores, cpulimit).",
    )
    cores_missing: MissingReason | None = Field(
        default=None,
        description="Set when the container's configured cores could not be read; `cores` then "
        "holds the host's CPU count and must not be used for a decision.",
    )
    # Seconds the collector has seen this container running without a restart;
    # the decider uses it for warm-up after a start.
    running_for_s: Annotated[float, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _missing_has_reason(self) -> ContainerReading:
        # A reading is a value or a reason, never a silent 0.
        if self.status == "running":
            if self.cpu_pct is None and self.cpu_missing is None:
                raise ValueError("cpu_pct is missing without a cpu_missing reason")
            if self.memory_pct is None and self.memory_missing is None:
                raise ValueError("memory_pct is missing without a memory_missing reason")
        return self


class HostTotals(WireModel):
    cores: Cores
    memory_mb: MemoryMb
    allocated_cores_running: Annotated[int, Field(ge=0)]
    allocated_memory_mb_running: Annotated[int, Field(ge=0)]
    allocated_cores_all: Annotated[int, Field(ge=0)]
    allocated_memory_mb_all: Annotated[int, Field(ge=0)]


class NodeSample(WireModel):
    """One node, one collection cycle: every container plus the host's totals."""

    schema_version: Literal[1] = SCHEMA_VERSION
    node: NodeName
    seq: Annotated[int, Field(ge=0, le=MAX_SEQ, strict=True)]  # an int on the wire, never a string
    boot_id: Annotated[str, Field(min_length=1, max_length=64)]
    taken_at: AwareDatetime
    interval_s: Annotated[float, Field(gt=0, le=86_400)]
    source: Literal["cgroup", "pvesh", "sim", "api"]
    host: HostTotals
    containers: Annotated[tuple[ContainerReading, ...], Field(max_length=MAX_CONTAINERS_PER_SAMPLE)]

    @model_validator(mode="after")
    def _taken_at_is_representable(self) -> NodeSample:
        try:
            year = self.taken_at.astimezone(UTC).year
        except (OverflowError, ValueError):
            year = 0
        if not EARLIEST_YEAR <= year <= LATEST_YEAR:
            raise ValueError(f"taken_at {self.taken_at.isoformat()} is outside {EARLIEST_YEAR}-{LATEST_YEAR}")
        return self

    @property
    def sample_id(self) -> str:
        return f"{self.node}:{self.boot_id}:{self.seq}"


# ---------------------------------------------------------------- intent


class ResourceSize(WireModel):
    cores: Cores
    memory_mb: MemoryMb


class DecisionReason(WireModel):
    """Why a change was decided: machine-readable rule and inputs, and one human line."""

    rule: Annotated[str, Field(max_length=64)]
    summary: ShortText
    inputs: dict[str, Scalar] = Field(default_factory=dict)
    thresholds: dict[str, Scalar] = Field(default_factory=dict)
    state: dict[str, Scalar] = Field(default_factory=dict)


IntentOrigin = Literal["decider", "rollback", "operator"]


def intent_id_for(
    node: str, vmid: int, expected: ResourceSize, target: ResourceSize, source_id: str
) -> str:
    """Deterministic id: the same decision from the same sample always gets the same id,
    so replicas racing on one sample, or a retried publish, produce one intent."""
    material = (
        f"{node}|{vmid}|{expected.cores}|{expected.memory_mb}|"
        f"{target.cores}|{target.memory_mb}|{source_id}"
    )
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class ScaleIntent(WireModel):
    """Set a container to `target`, but only if it still holds `expected`."""

    schema_version: Literal[1] = SCHEMA_VERSION
    intent_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    node: NodeName
    vmid: Vmid
    expected: ResourceSize
    target: ResourceSize
    reason: DecisionReason
    source_id: Annotated[str, Field(max_length=200)]  # the sample (or rollback request) it came from
    origin: IntentOrigin = "decider"
    policy_version: Annotated[str, Field(max_length=64)] = ""
    dry_run: bool = False
    created_at: AwareDatetime
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _id_matches_content(self) -> ScaleIntent:
        expected_id = intent_id_for(
            self.node, self.vmid, self.expected, self.target, self.source_id
        )
        if self.intent_id != expected_id:
            raise ValueError("intent_id does not match the intent's content")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        return self

    @property
    def direction(self) -> Literal["scale-up", "scale-down", "resize", "no-change"]:
        before, after = self.expected, self.target
        up = after.cores > before.cores or after.memory_mb > before.memory_mb
        down = after.cores < before.cores or after.memory_mb < before.memory_mb
        if up and down:
            return "resize"
        return "scale-up" if up else "scale-down" if down else "no-change"

    @classmethod
    def build(
        cls,
        *,
        node: str,
        vmid: int,
        expected: ResourceSize,
        target: ResourceSize,
        reason: DecisionReason,
        source_id: str,
        created_at: datetime,
        ttl_s: float,
        **extra: Any,
    ) -> ScaleIntent:
        from datetime import timedelta

        return cls(
            intent_id=intent_id_for(node, vmid, expected, target, source_id),
            node=node,
            vmid=vmid,
            expected=expected,
            target=target,
            reason=reason,
            source_id=source_id,
            created_at=created_at,
            expires_at=created_at + timedelta(seconds=ttl_s),
            **extra,
        )


# ---------------------------------------------------------------- group intent

GroupAction = Literal["scale-out", "scale-in"]


def group_intent_id_for(group: str, action: str, node: str, vmid: int, source_id: str) -> str:
    """Deterministic, like `intent_id_for`: replicas deciding one sample agree on the id."""
    material = f"group|{group}|{action}|{node}|{vmid}|{source_id}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class GroupIntent(WireModel):
    """Add a member to a horizontal group (clone `vmid`, the source) or remove one (stop or
    destroy `vmid`, a member the group created). Executed by `node`'s actuator, which picks
    the new clone's vmid and IP itself (docs/horizontal.md)."""

    kind: Literal["group"] = "group"  # tells it from a ScaleIntent on the shared subject
    schema_version: Literal[1] = SCHEMA_VERSION
    intent_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
    group: GroupName
    action: GroupAction
    node: NodeName
    vmid: Vmid
    target_node: NodeName | None = None  # where the clone should run; None: `node`
    reason: DecisionReason
    source_id: Annotated[str, Field(max_length=200)]
    origin: IntentOrigin = "decider"
    policy_version: Annotated[str, Field(max_length=64)] = ""
    dry_run: bool = False
    created_at: AwareDatetime
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _id_matches_content(self) -> GroupIntent:
        if self.intent_id != group_intent_id_for(
            self.group, self.action, self.node, self.vmid, self.source_id
        ):
            raise ValueError("intent_id does not match the intent's content")
        if self.expires_at <= self.created_at:
            raise ValueError("expires_at must be after created_at")
        return self

    @classmethod
    def build(
        cls,
        *,
        group: str,
        action: GroupAction,
        node: str,
        vmid: int,
        reason: DecisionReason,
        source_id: str,
        created_at: datetime,
        ttl_s: float,
        **extra: Any,
    ) -> GroupIntent:
        from datetime import timedelta

        return cls(
            intent_id=group_intent_id_for(group, action, node, vmid, source_id),
            group=group,
            action=action,
            node=node,
            vmid=vmid,
            reason=reason,
            source_id=source_id,
            created_at=created_at,
            expires_at=created_at + timedelta(seconds=ttl_s),
            **extra,
        )


AnyIntent = ScaleIntent | GroupIntent


# ---------------------------------------------------------------- event

EventOutcome = Literal["applied", "skipped", "failed", "rejected"]
StepName = Annotated[str, Field(pattern=r"^[a-z0-9-]{1,32}$")]


class GroupEventInfo(WireModel):
    """What a group action did: which members it added or removed and the steps that ran."""

    name: GroupName
    action: GroupAction
    source_vmid: Vmid | None = None  # scale-out: the container cloned
    new_vmid: Vmid | None = None  # scale-out: the clone
    removed_vmid: Vmid | None = None  # scale-in: the member stopped or destroyed
    target_node: NodeName | None = None
    steps: Annotated[tuple[StepName, ...], Field(max_length=32)] = ()
    ip: Annotated[str, Field(max_length=64)] | None = None  # the clone's static address, if any


class ScaleEvent(WireModel):
    """What the actuator did with one intent."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Annotated[str, Field(max_length=80)]
    intent_id: Annotated[str, Field(max_length=64)]
    node: NodeName
    vmid: Vmid
    outcome: EventOutcome
    detail: Annotated[str, Field(max_length=64)]  # reason code, e.g. "stale", "already-applied"
    message: ShortText = ""
    before: ResourceSize | None = None
    after: ResourceSize | None = None
    target: ResourceSize | None = None
    reason: DecisionReason | None = None
    origin: IntentOrigin = "decider"
    dry_run: bool = False
    attempts: Annotated[int, Field(ge=0)] = 0
    duration_ms: Annotated[float, Field(ge=0)] = 0.0
    occurred_at: AwareDatetime
    group: GroupEventInfo | None = None  # set on the events of group intents

    @property
    def scaled_up(self) -> bool:
        return self._changed(lambda old, new: new > old)

    @property
    def scaled_down(self) -> bool:
        return self._changed(lambda old, new: new < old)

    def _changed(self, compare: Any) -> bool:
        if self.outcome != "applied" or self.before is None or self.after is None:
            return False
        return bool(
            compare(self.before.cores, self.after.cores)
            or compare(self.before.memory_mb, self.after.memory_mb)
        )


def event_id_for(intent_id: str, outcome: EventOutcome, detail: str) -> str:
    """One event per intent and outcome: a republished event after a crash is deduplicated."""
    return f"{intent_id}-{outcome}-{detail}"[:80]


WIRE_MODELS: dict[str, type[WireModel]] = {
    "node-sample": NodeSample,
    "scale-intent": ScaleIntent,
    "group-intent": GroupIntent,
    "scale-event": ScaleEvent,
}
