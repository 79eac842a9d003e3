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


def group_unsupported(intent: GroupIntent, occurred_at: datetime) -> ScaleEvent:
    """The terminal event of a group intent this actuator cannot run."""
    return ScaleEvent(
        event_id=event_id_for(intent.intent_id, "rejected", "group-unsupported"),
        intent_id=intent.intent_id,
        node=intent.node,
        vmid=intent.vmid,
        outcome="rejected",
        detail="group-unsupported",
        message=f"this actuator does not run horizontal group actions ({intent.action} of group "
        f"{intent.group}); upgrade it",
        reason=intent.reason,
        origin=intent.origin,
        dry_run=intent.dry_run,
        occurred_at=occurred_at,
        group=GroupEventInfo(
            name=intent.group,
            action=intent.action,
            source_vmid=intent.vmid if intent.action == "scale-out" else None,
            removed_vmid=intent.vmid if intent.action == "scale-in" else None,
            target_node=intent.target_node,
        ),
    )
