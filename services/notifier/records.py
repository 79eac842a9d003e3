"""Delivery records: one per (event, channel), the notifier's memory across restarts.

A record is written once the endpoint accepted the message (or the delivery was
given up), before the event is acknowledged. A redelivered event whose record
exists is acknowledged without sending. Pure (the KV I/O is in store.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

DeliveryStatus = Literal["sent", "failed", "skipped"]


class DeliveryRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str
    channel: str
    status: DeliveryStatus
    at: datetime
    attempts: int = 0
    error: str = ""  # secrets already removed
    notification: str = ""  # the notification's key: a digest names its events' group

    def encode(self) -> bytes:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> DeliveryRecord:
        return cls.model_validate(json.loads(data))


def record_key(event_id: str, channel: str) -> str:
    """KV key `<channel>.<sha256 of the event id>`: event ids may hold characters KV keys may not."""
    return f"{channel}.{hashlib.sha256(event_id.encode()).hexdigest()[:40]}"
