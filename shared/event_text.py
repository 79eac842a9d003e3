"""One readable line per scaling event, for terminals (demo, `events`)."""

from __future__ import annotations

from shared.models import ResourceSize, ScaleEvent
from shared.validation import sanitize


def _sizes(before: ResourceSize | None, after: ResourceSize | None) -> str:
    if before is None or after is None:
        return ""
    return f" cores {before.cores}→{after.cores} memory {before.memory_mb}→{after.memory_mb} MB"


def direction(event: ScaleEvent) -> str:
    if event.scaled_up and event.scaled_down:
        return "resize"
    if event.scaled_up:
        return "scale-up"
    if event.scaled_down:
        return "scale-down"
    return event.detail


def describe_event(event: ScaleEvent) -> str:
    stamp = event.occurred_at.strftime("%Y-%m-%d %H:%M:%S")
    target = event.after if event.outcome == "applied" else event.target
    why = f" ({sanitize(event.reason.summary, 160)})" if event.reason else ""
    extra = f": {sanitize(event.message, 200)}" if event.message and event.outcome != "applied" else ""
    dry = " [dry-run]" if event.dry_run else ""
    return (
        f"{stamp} {event.node}/{event.vmid} {event.outcome} {direction(event)}"
        f"{_sizes(event.before, target)}{why}{extra}{dry} [intent {event.intent_id[:8]}]"
    )
