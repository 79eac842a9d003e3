"""Horizontal groups' records in the `autoscale_groups` bucket, and their Proxmox tag.

Keys come from shared/subjects.py (`members.<group>`, `ids.<vmid>`, `ips.<group>.<ip>`,
`action.<group>`). Records are JSON so an operator can read them with any NATS tool.
The tag `autoscale-group-<name>` on a container is the durable truth of membership: a
record lost or behind is rebuilt from the tags that samples carry (docs/horizontal.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.models import EventOutcome, GroupAction
from shared.validation import GROUP_NAME_PATTERN, GroupName, NodeName, Vmid

GROUP_TAG_PREFIX = "autoscale-group-"
IntentId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


def group_tag(group: str) -> str:
    return f"{GROUP_TAG_PREFIX}{group}"


def group_of_tags(tags: Iterable[str]) -> str | None:
    """The group a container's tags put it in, or None (a malformed suffix is no group)."""
    for tag in tags:
        if tag.startswith(GROUP_TAG_PREFIX):
            name = tag[len(GROUP_TAG_PREFIX) :]
            if GROUP_NAME_PATTERN.fullmatch(name):
                return name
    return None


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        return cls.model_validate_json(data)


class Member(_Record):
    vmid: Vmid
    node: NodeName
    # True for a clone the group made (the only kind scale-in may remove); False for the
    # source and the members listed by hand in `lxc_containers`.
    created: bool
    created_at: AwareDatetime | None = None
    intent_id: IntentId | None = None  # the scale-out that made it


class MembershipRecord(_Record):
    """`members.<group>`: written by the actuator with compare-and-set after it tags a
    clone (scale-out) or stops/destroys one (scale-in)."""

    group: GroupName
    members: Annotated[tuple[Member, ...], Field(max_length=10_000)] = ()
    updated_at: AwareDatetime

    def clones(self) -> tuple[Member, ...]:
        """The members the group made, oldest first (scale-in takes the last one)."""
        made = [m for m in self.members if m.created]
        return tuple(sorted(made, key=lambda m: (m.created_at is None, m.created_at, m.vmid)))


class IdReservation(_Record):
    """`ids.<vmid>`: a clone id taken (created, never reused while the key exists)."""

    vmid: Vmid
    group: GroupName
    node: NodeName
    intent_id: IntentId
    reserved_at: AwareDatetime


class IpReservation(_Record):
    """`ips.<group>.<ip>`: an address of the static pool handed to one clone."""

    group: GroupName
    ip: Annotated[str, Field(max_length=64)]
    vmid: Vmid
    intent_id: IntentId
    reserved_at: AwareDatetime


class ActionLock(_Record):
    """`action.<group>`: the group's last action, taken by a decider with compare-and-set
    over the previous record. `pending` until its outcome shows in samples (the new tagged
    member runs past the readiness gate, the removed one stops or vanishes) or
    `expires_at` passes; then `done`, and its `taken_at` starts the grace periods."""

    group: GroupName
    action: GroupAction
    intent_id: IntentId
    node: NodeName
    vmid: Vmid  # scale-out: the source; scale-in: the member being removed
    members_before: Annotated[tuple[Vmid, ...], Field(max_length=10_000)] = ()
    taken_at: AwareDatetime
    expires_at: AwareDatetime
    state: Literal["pending", "done"] = "pending"
    done_at: AwareDatetime | None = None
    outcome: Annotated[str, Field(max_length=200)] = ""  # how it ended, e.g. "clone 201 ready"


class ActionOutcome(_Record):
    """`outcome.<node>.<group>`: how the last group intent that node's actuator ran ended,
    written by that actuator after it published the terminal event. A decider holding a
    `pending` action with the same intent id ends it at once when the outcome is not
    `applied` (a failure, a rejection, an expired intent): without it the group would wait
    `action_timeout_s` (docs/horizontal.md, "When an action fails")."""

    group: GroupName
    node: NodeName
    intent_id: IntentId
    action: GroupAction
    outcome: EventOutcome
    detail: Annotated[str, Field(max_length=64)]
    occurred_at: AwareDatetime

    def ends_pending(self, lock: ActionLock) -> bool:
        """This outcome ends `lock` early: the same intent, on the lock's node, and
        nothing to wait for in samples. A dry run's `skipped` is not one: its lock holds
        for the grace period on purpose."""
        same = (self.intent_id, self.node, self.group) == (lock.intent_id, lock.node, lock.group)
        return same and self.outcome != "applied" and self.detail != "dry-run"
