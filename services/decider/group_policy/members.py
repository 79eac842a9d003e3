"""Who is in a group, where each member runs and whether its reading can be trusted.

Members are the source, the containers listed in `lxc_containers`, and the clones: every
container whose Proxmox tag says `autoscale-group-<name>` in any node's latest sample,
plus the clones the membership record lists (tags are the durable truth; the record
keeps a clone's creation time and its node while no sample shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.config import HorizontalGroup
from shared.groups import Member as Recorded
from shared.groups import MembershipRecord, group_of_tags
from shared.models import ContainerReading, NodeSample

MemberKind = Literal["source", "listed", "clone"]


@dataclass(frozen=True)
class Member:
    vmid: int
    kind: MemberKind
    node: str | None  # where a sample (or else the record) places it; None: nowhere known
    reading: ContainerReading | None  # from that node's latest sample; None: not in it
    node_stale: bool  # its node's latest sample is stale or missing: nothing is known now
    created_at: datetime | None = None  # clones: when the group made it (from the record)

    @property
    def running(self) -> bool:
        return not self.node_stale and self.reading is not None and self.reading.status == "running"

    def ready(self, ready_after_s: float) -> bool:
        """Running past the readiness gate, with both readings: it counts in the averages."""
        reading = self.reading
        return (
            self.running
            and reading is not None
            and reading.running_for_s is not None
            and reading.running_for_s >= ready_after_s
            and reading.cpu_pct is not None
            and reading.memory_pct is not None
        )


def members_of(
    name: str,
    group: HorizontalGroup,
    samples: Mapping[str, NodeSample],
    stale_nodes: frozenset[str],
    record: MembershipRecord | None,
) -> tuple[Member, ...]:
    """Every member of group `name`, the source first, then listed members, then clones
    oldest first (the last is the newest: the one a scale-in removes)."""
    found = _locate(samples)
    recorded = {m.vmid: m for m in record.members} if record is not None else {}
    source = group.source_vmid
    listed = [vmid for vmid in dict.fromkeys(group.lxc_containers) if vmid != source]
    clones = {vmid for vmid, (_, reading) in found.items() if group_of_tags(reading.tags) == name} | {
        m.vmid for m in recorded.values() if m.created
    }
    clones -= {source, *listed}

    def member(vmid: int, kind: MemberKind) -> Member:
        node, reading = found.get(vmid, (None, None))
        if node is None and vmid in recorded:
            node = recorded[vmid].node
        stale = node is not None and (node in stale_nodes or node not in samples)
        made = recorded[vmid].created_at if vmid in recorded else None
        return Member(vmid, kind, node, reading, stale, made)

    ordered = sorted(clones, key=lambda v: (_ordering_time(recorded, v), v))
    return (
        member(source, "source"),
        *(member(vmid, "listed") for vmid in listed),
        *(member(vmid, "clone") for vmid in ordered),
    )


def _ordering_time(recorded: Mapping[int, Recorded], vmid: int) -> float:
    # A clone known only by its tag (the record lost it) sorts before recorded ones;
    # among equals the higher vmid (Proxmox hands out increasing ids) is newer.
    entry = recorded.get(vmid)
    created = entry.created_at if entry is not None else None
    return created.timestamp() if created is not None else float("-inf")


def _locate(samples: Mapping[str, NodeSample]) -> dict[int, tuple[str, ContainerReading]]:
    """vmid -> (node, reading) over every node's latest sample; a container seen on two
    nodes (moved between their samples) is where the newer sample saw it."""
    found: dict[int, tuple[str, ContainerReading]] = {}
    taken: dict[int, datetime] = {}
    for node, sample in samples.items():
        for reading in sample.containers:
            if reading.vmid not in taken or sample.taken_at > taken[reading.vmid]:
                found[reading.vmid] = (node, reading)
                taken[reading.vmid] = sample.taken_at
    return found
