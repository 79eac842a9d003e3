"""The actuator's I/O shell: the per-node durable consumer and the fetch loop.

Only the holder of the node's lease fetches (leadership.py); a standby keeps the lease
under watch and fetches once it takes the lease over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.actuator.handler import IntentHandler
from services.actuator.leadership import Leadership
from services.actuator.retry import ConsumerTiming
from shared import subjects
from shared.observability import CONSUMER_BOUND, READINESS
from shared.pull import fetch_until_stopped

log = logging.getLogger(__name__)

RESUBSCRIBE_PAUSE_S = 0.5
STANDBY_PAUSE_S = 0.2  # how soon a standby fetches once its lease task takes the lease


def consumer_config(node: str, timing: ConsumerTiming, max_in_flight: int) -> ConsumerConfig:
    name = subjects.actuator_consumer(node)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        filter_subject=subjects.intents_subject(node),
        ack_wait=timing.ack_wait_s,
        max_deliver=timing.max_deliver,
        backoff=list(timing.backoff_s),
        max_ack_pending=max(max_in_flight * 4, 64),
    )


@dataclass
class ActuatorService:
    js: Any
    handler: IntentHandler
    node: str
    leadership: Leadership
    max_in_flight: int = 8
    fetch_timeout_s: float = 1.0
    _subscription: Any = field(default=None, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.max_in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle intents (while holding the node's lease) until `stop` is set,
        then let in-flight intents finish and give the lease up."""
        log.info("actuator ready", extra={"event": "actuator_ready", "node": self.node,
                                          "consumer": subjects.actuator_consumer(self.node),
                                          "holder": self.leadership.holder})  # fmt: skip
        lease_stop = asyncio.Event()  # the lease is kept until the last intent is finished
        lease = asyncio.create_task(self.leadership.run(lease_stop))
        try:
            while not stop.is_set():
                await self.tick(stop)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            lease_stop.set()
            await lease
            await self.leadership.release()
        await _unsubscribe(self._subscription)

    async def tick(self, stop: asyncio.Event) -> int:
        """One cycle: subscribe if needed, fetch as many intents as there are free slots,
        start handling them. Returns how many were started; never raises."""
        if not await self._subscribed(stop):  # a standby binds too: it is ready to take over
            return 0
        if not self.leadership.leading:
            await _sleep_unless(stop, STANDBY_PAUSE_S)
            return 0
        free = await self._take_free_slots()
        try:
            messages = await self._fetch(free, stop)
        finally:
            for _ in range(free):
                self._slots.release()
        for msg in messages:
            await self._slots.acquire()
            task = asyncio.create_task(self._handle(msg))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(messages)

    async def _subscribed(self, stop: asyncio.Event) -> bool:
        if self._subscription is not None:
            return True
        try:
            self._subscription = await self.js.pull_subscribe_bind(
                subjects.actuator_consumer(self.node), stream=subjects.INTENTS_STREAM
            )
            READINESS.mark(CONSUMER_BOUND, True)
            return True
        except Exception as exc:
            log.warning("cannot bind the consumer yet", extra={"event": "bind_failed", "error": str(exc)})
            await _sleep_unless(stop, RESUBSCRIBE_PAUSE_S)
            return False

    async def _fetch(self, batch: int, stop: asyncio.Event) -> list[Any]:
        """Fetch up to `batch` intents, returning early (with none) when asked to stop.

        A failed fetch (connection lost, consumer gone) drops the subscription."""
        try:
            return await fetch_until_stopped(self._subscription, batch, self.fetch_timeout_s, stop)
        except Exception as exc:
            log.warning("fetch failed, resubscribing", extra={"event": "fetch_failed", "error": str(exc)})
            await _unsubscribe(self._subscription)
            self._subscription = None
            await _sleep_unless(stop, RESUBSCRIBE_PAUSE_S)
            return []

    async def _handle(self, msg: Any) -> None:
        try:
            await self.handler.handle(msg)
        except Exception:  # the handler ends every intent itself; this is a last resort
            log.exception("unexpected error handling an intent", extra={"event": "handler_error"})
        finally:
            self._slots.release()

    async def _take_free_slots(self) -> int:
        """Take every free slot (at least one), so a fetch never asks for more than we can run."""
        await self._slots.acquire()
        free = 1
        while not self._slots.locked():
            await self._slots.acquire()
            free += 1
        return free


async def _unsubscribe(subscription: Any) -> None:
    if subscription is None:
        return
    with contextlib.suppress(Exception):
        await subscription.unsubscribe()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
