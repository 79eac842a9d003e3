"""Publish events to the events stream: one publisher, shared by the applier and the handler."""

from __future__ import annotations

from typing import Any

from shared import subjects
from shared.codec import encode
from shared.models import ScaleEvent


class EventPublisher:
    def __init__(self, js: Any) -> None:
        self._js = js

    async def publish(self, event: ScaleEvent) -> None:
        """Stored once: the event id is the Nats-Msg-Id, so the stream drops a republished copy."""
        subject = subjects.events_subject(event.node, event.vmid)
        await self._js.publish(subject, encode(event), headers={"Nats-Msg-Id": event.event_id})
