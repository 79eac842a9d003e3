"""The actuator's I/O shell: the per-node durable consumer and the fetch loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.actuator.handler import IntentHandler
from services.actuator.retry import ConsumerTiming
from shared import subjects

log = logging.getLogger(__name__)

RESUBSCRIBE_PAUSE_S = 0.5


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


async def ensure_consumer(js: Any, config: ConsumerConfig) -> None:
    """Create the durable consumer, or bring an existing one's timing in line (idempotent)."""
    await js.add_consumer(subjects.INTENTS_STREAM, config)


@dataclass
class ActuatorService:
    js: Any
    handler: IntentHandler
    node: str
    max_in_flight: int = 8
    fetch_timeout_s: float = 1.0

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and handle intents until `stop` is set, then let in-flight intents finish."""
        slots = asyncio.Semaphore(self.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        consumer = subjects.actuator_consumer(self.node)
        subscription = None
        log.info("actuator ready", extra={"event": "actuator_ready", "node": self.node, "consumer": consumer})
        while not stop.is_set():
            if subscription is None:
                subscription = await self._subscribe(consumer, stop)
                if subscription is None:
                    continue
            free = await self._wait_for_slots(slots)
            try:
                messages = await self._fetch(subscription, free, stop)
            except Exception as exc:  # connection lost, consumer gone: start a fresh subscription
                log.warning("fetch failed, resubscribing", extra={"event": "fetch_failed", "error": str(exc)})
                await _unsubscribe(subscription)
                subscription = None
                await _sleep_unless(stop, RESUBSCRIBE_PAUSE_S)
                messages = []
            finally:
                for _ in range(free):
                    slots.release()
            for msg in messages:
                await slots.acquire()
                task = asyncio.create_task(self._handle(msg, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if subscription is not None:
            await _unsubscribe(subscription)

    async def _fetch(self, subscription: Any, batch: int, stop: asyncio.Event) -> list[Any]:
        """Fetch up to `batch` intents, returning early (with none) when asked to stop.

        Intents a cancelled fetch had already pulled are redelivered after ack_wait."""
        fetch = asyncio.ensure_future(subscription.fetch(batch=batch, timeout=self.fetch_timeout_s))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not fetch.done():
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fetch
            return []
        try:
            messages: list[Any] = fetch.result()
        except nats.errors.TimeoutError:
            return []
        return messages

    async def _handle(self, msg: Any, slots: asyncio.Semaphore) -> None:
        try:
            await self.handler.handle(msg)
        except Exception:
            log.exception("unexpected error handling an intent", extra={"event": "handler_error"})
        finally:
            slots.release()

    async def _subscribe(self, consumer: str, stop: asyncio.Event) -> Any:
        try:
            return await self.js.pull_subscribe_bind(consumer, stream=subjects.INTENTS_STREAM)
        except Exception as exc:
            log.warning("cannot bind the consumer yet", extra={"event": "bind_failed", "error": str(exc)})
            await _sleep_unless(stop, RESUBSCRIBE_PAUSE_S)
            return None

    @staticmethod
    async def _wait_for_slots(slots: asyncio.Semaphore) -> int:
        """Take every free slot (at least one), so a fetch never asks for more than we can run."""
        await slots.acquire()
        free = 1
        while not slots.locked():
            await slots.acquire()
            free += 1
        return free


async def _unsubscribe(subscription: Any) -> None:
    with contextlib.suppress(Exception):
        await subscription.unsubscribe()


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
