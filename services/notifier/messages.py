"""What a notification says, for one event or a digest of many. Pure.

Every message names the node, the container, the size before → after (or the
target it did not reach) and the decision's reason line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

from shared.event_text import direction, group_text
from shared.models import ResourceSize, ScaleEvent
from shared.validation import sanitize

# Gotify priorities (0-10); the original sent 5 for changes and 8 for errors.
PRIORITY: dict[str, int] = {"skipped": 2, "applied": 5, "rejected": 7, "failed": 8}
DIGEST_LINES = 40  # a digest lists this many events and counts the rest


@dataclass(frozen=True)
class Notification:
    title: str
    body: str
    priority: int
    # Uptime Kuma's push status: "down" when something failed.
    status: Literal["up", "down"]
    event_ids: tuple[str, ...]
    # The events themselves, as JSON, for the webhook.
    events: tuple[dict[str, Any], ...]

    @property
    def key(self) -> str:
        """Stable id of this notification (first event id; a digest also counts its events)."""
        first = self.event_ids[0] if self.event_ids else "none"
        return first if len(self.event_ids) == 1 else f"digest-{first}-{len(self.event_ids)}"


def _text(lines: list[str]) -> str:
    """Lines of outside text, each made safe (no control characters smuggled in)."""
    return "\n".join(sanitize(line, limit=600) for line in lines)


def _size(size: ResourceSize | None) -> str:
    return "?" if size is None else f"{size.cores} cores, {size.memory_mb} MB"


def _change(event: ScaleEvent) -> str:
    if event.group is not None:
        return group_text(event)
    if event.outcome == "applied":
        return f"{_size(event.before)} → {_size(event.after)}"
    return f"{_size(event.before)} → {_size(event.target)} (not applied)"


def headline(event: ScaleEvent) -> str:
    """E.g. `pve1/101 scale-up applied: 2 cores, 1024 MB → 3 cores, 1024 MB`."""
    what = direction(event) if event.outcome == "applied" else event.outcome
    label = f"{what} applied" if event.outcome == "applied" else what
    dry = " [dry-run]" if event.dry_run else ""
    return sanitize(f"{event.node}/{event.vmid} {label}{dry}: {_change(event)}", limit=300)


def for_event(event: ScaleEvent) -> Notification:
    lines = [
        f"Node: {event.node}",
        f"Container: {event.vmid}",
        f"Outcome: {event.outcome} ({event.detail})" + (" [dry-run]" if event.dry_run else ""),
        f"Size: {_change(event)}",
    ]
    if event.reason is not None:
        lines.append(f"Reason: {event.reason.summary}")
    if event.message:
        lines.append(f"Detail: {event.message}")
    lines.append(f"At: {event.occurred_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    lines.append(f"Event: {event.event_id}")
    title = f"LXC AutoScale: {headline(event)}"
    return Notification(
        title=sanitize(title, limit=300),
        body=_text(lines),
        priority=PRIORITY[event.outcome],
        status="down" if event.outcome == "failed" else "up",
        event_ids=(event.event_id,),
        events=(event.model_dump(mode="json"),),
    )


def for_digest(events: list[ScaleEvent]) -> Notification:
    """One message for many events: counts by outcome, then one line per event."""
    if not events:
        raise ValueError("a digest needs at least one event")
    counts: dict[str, int] = {}
    for event in events:
        counts[event.outcome] = counts.get(event.outcome, 0) + 1
    summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
    nodes = sorted({e.node for e in events})
    lines = [f"{len(events)} scaling events on {', '.join(nodes)}: {summary}", ""]
    for event in events[:DIGEST_LINES]:
        reason = f" ({event.reason.summary})" if event.reason is not None else ""
        lines.append(f"- {headline(event)}{reason}")
    if len(events) > DIGEST_LINES:
        lines.append(f"… and {len(events) - DIGEST_LINES} more")
    return Notification(
        title=sanitize(f"LXC AutoScale: {len(events)} scaling events ({summary})", limit=300),
        body=_text(lines),
        priority=max(PRIORITY[e.outcome] for e in events),
        status="down" if "failed" in counts else "up",
        event_ids=tuple(e.event_id for e in events),
        events=tuple(e.model_dump(mode="json") for e in events),
    )
