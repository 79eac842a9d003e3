"""Horizontal groups as the console shows them: the configured sections, the records of
the `autoscale_groups` bucket (membership, the action in flight, reserved addresses) and
the members the latest samples show by their `autoscale-group-<name>` tag, which is the
durable truth (docs/horizontal.md). Pure: the cluster view hands in what it follows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.config import HorizontalGroup
from shared.groups import ActionLock, MembershipRecord, group_of_tags
from shared.models import ContainerReading, NodeSample

R = TypeVar("R", MembershipRecord, ActionLock)


@dataclass(frozen=True)
class _Seen:
    node: str
    reading: ContainerReading


def group_views(
    configured: Mapping[str, HorizontalGroup],
    samples: Mapping[str, NodeSample],
    records: Mapping[str, bytes],
    now: datetime,
) -> list[dict[str, Any]]:
    """One view per group configured or recorded, by name."""
    settings = configured  # by group name, the section's suffix
    seen = {r.vmid: _Seen(sample.node, r) for sample in samples.values() for r in sample.containers}
    tagged: dict[str, set[int]] = {}
    for vmid, found in seen.items():
        name = group_of_tags(found.reading.tags)
        if name is not None:
            tagged.setdefault(name, set()).add(vmid)
    recorded = {key.partition(".")[2] for key in records if key.startswith(("members.", "action."))}
    return [
        _group_view(name, settings.get(name), seen, tagged.get(name, set()), records, now)
        for name in sorted(set(settings) | set(tagged) | recorded)
    ]


def _group_view(
    name: str,
    group: HorizontalGroup | None,
    seen: Mapping[int, _Seen],
    tagged: set[int],
    records: Mapping[str, bytes],
    now: datetime,
) -> dict[str, Any]:
    record = _read(MembershipRecord, records.get(f"members.{name}"))
    created = {m.vmid: m for m in record.members} if record else {}
    configured = {group.source_vmid, *group.lxc_containers} if group else set()
    vmids = sorted(configured | set(created) | tagged)
    members = [_member(vmid, seen.get(vmid), vmid in created and created[vmid].created, vmid in tagged)
               for vmid in vmids]  # fmt: skip
    running = [m for m in members if m["status"] == "running"]
    lock = _read(ActionLock, records.get(f"action.{name}"))
    return {
        "group": name,
        "configured": group is not None,
        "source": group.source_vmid if group else None,
        "min_instances": group.min_size if group else None,
        "max_instances": group.max_instances if group else None,
        "thresholds": _thresholds(group),
        "members": members,
        "running": len(running),
        "cpu_pct": _mean(m["cpu_pct"] for m in running),
        "memory_pct": _mean(m["memory_pct"] for m in running),
        "action": None if lock is None else {
            **lock.model_dump(mode="json", exclude={"members_before"}), "expired": now >= lock.expires_at,
        },
        "reserved_ips": sorted(
            key.rsplit(".", 1)[1] for key in records if key.startswith(f"ips.{name}.")
        ),
        "record_updated_at": record.updated_at.isoformat() if record else None,
    }  # fmt: skip


def _member(vmid: int, found: _Seen | None, created: bool, tagged: bool) -> dict[str, Any]:
    reading = found.reading if found else None
    return {
        "vmid": vmid,
        "node": found.node if found else None,
        "hostname": reading.hostname if reading else None,
        "status": reading.status if reading else "not in any sample",
        "created": created,  # a clone the group made (the only kind scale-in removes)
        "tagged": tagged,
        "cpu_pct": reading.cpu_pct if reading else None,
        "memory_pct": reading.memory_pct if reading else None,
    }


def _thresholds(group: HorizontalGroup | None) -> dict[str, float] | None:
    if group is None:
        return None
    return {
        "cpu_upper": group.horiz_cpu_upper_threshold,
        "cpu_lower": group.horiz_cpu_lower_threshold,
        "memory_upper": group.horiz_memory_upper_threshold,
        "memory_lower": group.horiz_memory_lower_threshold,
    }


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 1) if known else None


def _read(model: type[R], raw: bytes | None) -> R | None:
    if not raw:
        return None
    try:
        return model.from_bytes(raw)
    except ValidationError:
        return None  # unreadable: its writer replaces it; the tags still show the members
