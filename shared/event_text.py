"""One readable line per scaling event, for terminals (`lxc-autoscale events`, the demo)."""

from __future__ import annotations

from datetime import UTC

from shared.models import ScaleEvent
from shared.validation import sanitize


def direction(event: ScaleEvent) -> str:
    if event.group is not None:
        return event.group.action  # scale-out / scale-in
    if event.scaled_up and event.scaled_down:
        return "resize"
    if event.scaled_up:
        return "scale-up"
    return "scale-down" if event.scaled_down else "no-change"


def format_line(event: ScaleEvent) -> str:
    """One readable line, times in UTC, e.g. `2026-01-05 12:00:03 pve1/101 applied scale-up
    cores 2→3 memory 1024→1024 MB (cpu 95% > 80%) [intent 3f2a1b0c…]`."""
    stamp = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    parts = [stamp, f"{event.node}/{event.vmid}", event.outcome]
    if event.dry_run:
        parts.append("[dry-run]")
    if event.group is not None:
        parts.append(group_text(event))
        if event.outcome != "applied":
            parts.append(f"{event.detail}: {event.message}" if event.message else event.detail)
    elif event.outcome == "applied" and event.before is not None and event.after is not None:
        parts.append(
            f"{direction(event)} cores {event.before.cores}→{event.after.cores} "
            f"memory {event.before.memory_mb}→{event.after.memory_mb} MB"
        )
    else:
        parts.append(f"{event.detail}: {event.message}" if event.message else event.detail)
    if event.reason is not None:
        parts.append(f"({event.reason.summary})")
    if event.attempts > 1:
        parts.append(f"after {event.attempts} attempts")
    parts.append(f"[intent {event.intent_id[:8]}…]")
    return sanitize(" ".join(parts), limit=2000)


def group_text(event: ScaleEvent) -> str:
    """E.g. `group web scale-out 200→201 ip 10.0.0.21 steps snapshot,clone,net,tag,start`."""
    info = event.group
    if info is None:
        return ""
    text = f"group {info.name} {info.action}"
    if info.new_vmid is not None:
        text += (
            f" {info.source_vmid}→{info.new_vmid}" if info.source_vmid is not None else f" +{info.new_vmid}"
        )
    elif info.removed_vmid is not None:
        text += f" -{info.removed_vmid}"
    if info.target_node is not None:
        text += f" on {info.target_node}"
    if info.ip:
        text += f" ip {info.ip}"
    if info.steps:
        text += f" steps {','.join(info.steps)}"
    return text
