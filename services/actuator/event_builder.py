"""Build the ScaleEvent that reports what happened to one intent. Pure."""

from __future__ import annotations

from datetime import datetime

from shared.models import EventOutcome, ResourceSize, ScaleEvent, ScaleIntent, event_id_for
from shared.validation import sanitize


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
    return ScaleEvent(
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
