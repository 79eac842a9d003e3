"""Horizontal groups as the console shows them: the members as the deciders see them
and the decision they would take now (the injected `ExplainGroups`, which runs the
deciders' own pure `decide_group`), with each member's latest reading, the group's
bounds, and its last action from the `autoscale_groups` bucket. Pure: the cluster view
hands in what it follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from shared.config import HorizontalGroup
from shared.explanation import GroupExplanation, GroupMemberExplanation
from shared.groups import ActionLock
from shared.models import ContainerReading, NodeSample


def group_views(
    explained: Mapping[str, GroupExplanation],
    configured: Mapping[str, HorizontalGroup],
    samples: Mapping[str, NodeSample],
    records: Mapping[str, bytes],
    now: datetime,
) -> list[dict[str, Any]]:
    """One view per configured group, by name."""
    readings = {(sample.node, r.vmid): r for sample in samples.values() for r in sample.containers}
    return [
        _group_view(explained[name], group, readings, records, now)
        for name, group in sorted(configured.items())
        if name in explained
    ]


def _group_view(
    explained: GroupExplanation,
    group: HorizontalGroup,
    readings: Mapping[tuple[str, int], ContainerReading],
    records: Mapping[str, bytes],
    now: datetime,
) -> dict[str, Any]:
    name = explained.group
    members = [_member(m, readings.get((m.node, m.vmid)) if m.node else None) for m in explained.members]
    ready = [m for m in members if m["ready"]]
    intent = explained.intent
    return {
        "group": name,
        "source": group.source_vmid,
        "min_instances": group.min_size,
        "max_instances": group.max_instances,
        "thresholds": {
            "cpu_upper": group.horiz_cpu_upper_threshold, "cpu_lower": group.horiz_cpu_lower_threshold,
            "memory_upper": group.horiz_memory_upper_threshold,
            "memory_lower": group.horiz_memory_lower_threshold,
        },
        "members": members,
        "running": sum(1 for m in members if m["running"]),
        "ready": len(ready),
        # what the deciders average: the members running past the readiness gate
        "cpu_pct": _mean(m["cpu_pct"] for m in ready),
        "memory_pct": _mean(m["memory_pct"] for m in ready),
        "decision": {
            "reason": explained.decision,
            "action": intent.action if intent else None,
            "vmid": intent.vmid if intent else None,
            "node": intent.node if intent else None,
            "dry_run": intent.dry_run if intent else None,
        },
        "action": _last_action(records.get(f"action.{name}"), now),
        "reserved_ips": sorted(key.rsplit(".", 1)[1] for key in records if key.startswith(f"ips.{name}.")),
    }  # fmt: skip


def _member(member: GroupMemberExplanation, reading: ContainerReading | None) -> dict[str, Any]:
    status = reading.status if reading else "not in any sample"
    return {
        **member.model_dump(),
        "hostname": reading.hostname if reading else None,
        "status": "stale sample" if member.node_stale else status,
        "cpu_pct": reading.cpu_pct if reading else None,
        "memory_pct": reading.memory_pct if reading else None,
    }


def _last_action(raw: bytes | None, now: datetime) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        lock = ActionLock.from_bytes(raw)
    except ValidationError:
        return None  # unreadable: the deciders replace it at the next action
    return {
        **lock.model_dump(mode="json", exclude={"members_before"}),
        "expired": lock.state == "pending" and now >= lock.expires_at,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 1) if known else None
