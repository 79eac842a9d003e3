"""Build the ScaleEvent that reports what happened to one intent. Pure.

Every event fits in a message and in the journal: the decider's reason is the only part
of unbounded size, and it is left out (with a note) when the event would grow past
MAX_EVENT_JSON_BYTES.
"""

from __future__ import annotations

from datetime import datetime

from shared.models import (
    EventOutcome,
    GroupEventInfo,
    GroupIntent,
    ResourceSize,
    ScaleEvent,
    ScaleIntent,
    event_id_for,
)
from shared.validation import sanitize

MAX_EVENT_JSON_BYTES = 64 * 1024


def build_event(
    intent: ScaleIntent,
    outcome: EventOutcome,
    detail: str,
    *,
    occurred_at: datetime,
    message: str = "",
    before: ResourceSize | None = None,
    after: ResourceSize | None = None,
    attempts: int = 0,
    duration_ms: float = 0.0,
) -> ScaleEvent:
    event = ScaleEvent(
        event_id=event_id_for(intent.intent_id, outcome, detail),
        intent_id=intent.intent_id,
        node=intent.node,
        vmid=intent.vmid,
        outcome=outcome,
        detail=detail[:64],
        message=sanitize(" ".join(message.split()), limit=1000),
        before=before,
        after=after,
        target=intent.target,
        reason=intent.reason,
        origin=intent.origin,
        dry_run=intent.dry_run,
        attempts=attempts,
        duration_ms=max(0.0, duration_ms),
        occurred_at=occurred_at,
    )
    if len(event.model_dump_json()) <= MAX_EVENT_JSON_BYTES:
        return event
    note = "(the decider's reason was left out: too large for an event)"
    return event.model_copy(update={"reason": None, "message": f"{event.message} {note}".strip()})


def group_event(
    intent: GroupIntent,
    outcome: EventOutcome,
    detail: str,
    *,
    occurred_at: datetime,
    message: str = "",
    steps: tuple[str, ...] = (),
    new_vmid: int | None = None,
    ip: str | None = None,
    attempts: int = 0,
    duration_ms: float = 0.0,
) -> ScaleEvent:
    """The one terminal event of a group intent. Its vmid is the clone once one was
    reserved (scale-out) or the member removed (scale-in), else the intent's container."""
    out = intent.action == "scale-out"
    return ScaleEvent(
        event_id=event_id_for(intent.intent_id, outcome, detail),
        intent_id=intent.intent_id,
        node=intent.node,
        vmid=(new_vmid or intent.vmid) if out else intent.vmid,
        outcome=outcome,
        detail=detail[:64],
        message=sanitize(" ".join(message.split()), limit=1000),
        reason=intent.reason,
        origin=intent.origin,
        dry_run=intent.dry_run,
        attempts=attempts,
        duration_ms=max(0.0, duration_ms),
        occurred_at=occurred_at,
        group=GroupEventInfo(
            name=intent.group,
            action=intent.action,
            source_vmid=intent.vmid if out else None,
            new_vmid=new_vmid if out else None,
            removed_vmid=None if out else intent.vmid,
            target_node=intent.target_node,
            steps=steps[-32:],
            ip=ip,
        ),
    )
