"""Fan-out of live updates to the page's server-sent-event streams.

Each browser gets a bounded queue; a client too slow to keep up loses its oldest
updates (it refetches the containers list on the next `changed` anyway) and never
slows the follower or other clients.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

QUEUE_SIZE = 256


@dataclass(frozen=True)
class Update:
    kind: str  # "event" (a scaling event) or "changed" (samples, state or pauses moved)
    data: dict[str, Any]


@dataclass
class Hub:
    clients: set[asyncio.Queue[Update]] = field(default_factory=set)

    def join(self) -> asyncio.Queue[Update]:
        queue: asyncio.Queue[Update] = asyncio.Queue(QUEUE_SIZE)
        self.clients.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[Update]) -> None:
        self.clients.discard(queue)

    def publish(self, update: Update) -> None:
        for queue in self.clients:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(update)
