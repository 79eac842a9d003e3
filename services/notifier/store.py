"""Delivery records in the `autoscale_notifier` KV bucket."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nats.js.errors import KeyNotFoundError

from services.notifier.records import DeliveryRecord, record_key


@dataclass
class DeliveryStore:
    kv: Any

    async def get(self, event_id: str, channel: str) -> DeliveryRecord | None:
        try:
            entry = await self.kv.get(record_key(event_id, channel))
        except KeyNotFoundError:  # also raised for a deleted or purged key
            return None
        if not entry.value:
            return None
        return DeliveryRecord.decode(entry.value)

    async def put(self, record: DeliveryRecord) -> None:
        await self.kv.put(record_key(record.event_id, record.channel), record.encode())
