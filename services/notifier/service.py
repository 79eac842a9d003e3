"""The notifier's I/O shell: one worker per channel, each with its own durable
consumer on the events stream, so a slow or dead endpoint holds up only itself.

Per event: decode (poison is terminated, never fatal) → already recorded? ack →
not wanted? ack → deliver (or add to the digest) → record → ack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError

from services.notifier.delivery import Deliverer, DeliveryResult
from services.notifier.digest import Batch
from services.notifier.messages import Notification, for_digest, for_event
from services.notifier.records import DeliveryRecord, DeliveryStatus
from services.notifier.selection import too_old, wanted
from services.notifier.store import DeliveryStore
from shared import failpoints, subjects
from shared.clock import Clock
from shared.codec import CodecError, decode
from shared.config import NotifierSettings
from shared.models import ScaleEvent
from shared.pull import fetch_until_stopped

log = logging.getLogger(__name__)

FETCH_BATCH = 64
RETRY_PAUSE_S = 0.5
ACK_MARGIN_S = 5.0  # for recording and acknowledging after the last attempt


def consumer_config(channel: str, settings: NotifierSettings) -> ConsumerConfig:
    """Ack deadline: the whole retry budget, plus the digest interval in digest mode."""
    retry_budget = settings.max_attempts * (settings.timeout_s + settings.backoff_max_s)
    name = subjects.notifier_consumer(channel)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.NEW,  # a new channel starts now, not 30 days back
        filter_subject=subjects.EVENTS_ALL,
        ack_wait=retry_budget + settings.digest_interval_s + ACK_MARGIN_S,
        max_deliver=-1,  # an event is only ever given up with a record, never dropped
        max_ack_pending=max(1000, 2 * settings.digest_max_events),
    )


@dataclass
class ChannelWorker:
    js: Any
    deliverer: Deliverer
    store: DeliveryStore
    settings: NotifierSettings
    clock: Clock
    fetch_timeout_s: float = 0.5
    counts: Counter[str] = field(default_factory=Counter)
    batch: Batch[tuple[ScaleEvent, Any]] | None = None

    def __post_init__(self) -> None:
        if self.settings.digest_interval_s > 0:
            self.batch = Batch(self.settings.digest_interval_s, self.settings.digest_max_events)

    @property
    def channel(self) -> str:
        return self.deliverer.channel.name

    @property
    def pending(self) -> int:
        """Events waiting for the next digest."""
        return len(self.batch.items) if self.batch is not None else 0

    async def run(self, stop: asyncio.Event) -> None:
        subscription = None
        while not stop.is_set():
            try:
                if subscription is None:
                    subscription = await self._subscribe()
                messages = await fetch_until_stopped(subscription, FETCH_BATCH, self.fetch_timeout_s, stop)
                for msg in messages:
                    await self.handle(msg)
                if self.batch is not None and self.batch.due(self.clock.monotonic()):
                    await self.flush()
            except Exception as exc:  # broker gone, consumer missing, KV unreachable
                log.warning(
                    "%s: %s: %s; retrying", self.channel, type(exc).__name__, exc,
                    extra={"event": "notifier_retry", "channel": self.channel},
                )  # fmt: skip
                subscription = None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_PAUSE_S)
        await self._release_batch()
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _subscribe(self) -> Any:
        config = consumer_config(self.channel, self.settings)
        try:
            await self.js.add_consumer(subjects.EVENTS_STREAM, config)  # create or update
        except APIError as exc:  # exists with settings that cannot change: use it as is
            await self.js.consumer_info(subjects.EVENTS_STREAM, config.durable_name)  # or raise
            log.warning(
                "%s: keeping the existing consumer: %s", self.channel, exc.description,
                extra={"event": "consumer_kept", "channel": self.channel},
            )  # fmt: skip
        return await self.js.pull_subscribe_bind(config.durable_name, stream=subjects.EVENTS_STREAM)

    async def handle(self, msg: Any) -> None:
        try:
            event = decode(msg.data, ScaleEvent)
        except CodecError as exc:
            self.counts["undecodable"] += 1
            log.warning(
                "undecodable event set aside: %s", exc,
                extra={"event": "event_undecodable", "channel": self.channel, "subject": msg.subject},
            )  # fmt: skip
            await msg.term()
            return
        if not wanted(event, self.settings):
            self.counts["not_selected"] += 1
            await msg.ack()
            return
        if await self.store.get(event.event_id, self.channel) is not None:
            self.counts["already_recorded"] += 1  # sent before a restart or a lost ack
            await msg.ack()
            return
        if too_old(event, self.clock.now().timestamp(), self.settings):
            log.info(
                "%s: not sent, older than NOTIFIER.max_event_age_s", self.channel,
                extra={"event": "notification_too_old", "channel": self.channel,
                       "node": event.node, "vmid": event.vmid, "occurred_at": event.occurred_at},
            )  # fmt: skip
            await self._record([event], "skipped", error="older than NOTIFIER.max_event_age_s")
            await msg.ack()
            return
        if self.batch is not None:
            self.batch.add((event, msg), self.clock.monotonic())
            return
        notification = for_event(event)
        result = await self.deliverer.deliver(notification, on_attempt=msg.in_progress)
        await failpoints.reach("notifier.after-send")
        await self._finish([event], notification, result)
        await failpoints.reach("notifier.after-record")
        await msg.ack()

    async def flush(self) -> None:
        """Send the digest of every waiting event, record each, then acknowledge them."""
        if self.batch is None:
            return
        items = self.batch.take()
        events = list({event.event_id: event for event, _ in items}.values())  # a redelivered copy
        if events:
            notification = for_digest(events)
            result = await self.deliverer.deliver(notification)
            await failpoints.reach("notifier.after-send")
            await self._finish(events, notification, result)
            await failpoints.reach("notifier.after-record")
        for _, msg in items:
            await msg.ack()

    async def _finish(
        self, events: list[ScaleEvent], notification: Notification, result: DeliveryResult
    ) -> None:
        status: DeliveryStatus = "sent" if result.sent else "failed"
        await self._record(events, status, result.attempts, result.error, notification.key)
        extra = {
            "event": "notification_sent" if result.sent else "notification_failed",
            "channel": self.channel, "endpoint": self.deliverer.channel.endpoint,
            "events": len(events), "attempts": result.attempts,
            "node": events[0].node, "vmid": events[0].vmid, "error": result.error,
        }  # fmt: skip
        if result.sent:
            log.info("%s: sent %s", self.channel, notification.title, extra=extra)
        else:
            log.warning("%s: gave up: %s", self.channel, result.error, extra=extra)

    async def _record(
        self, events: list[ScaleEvent], status: DeliveryStatus, attempts: int = 0,
        error: str = "", notification: str = "",
    ) -> None:  # fmt: skip
        now = self.clock.now()
        for event in events:
            await self.store.put(
                DeliveryRecord(
                    event_id=event.event_id, channel=self.channel, status=status, at=now,
                    attempts=attempts, error=error, notification=notification,
                )
            )  # fmt: skip
        self.counts[status] += len(events)

    async def _release_batch(self) -> None:
        """On shutdown, hand the digest's waiting events back to the stream at once."""
        if self.batch is None:
            return
        for _, msg in self.batch.take():
            with contextlib.suppress(Exception):
                await msg.nak()


@dataclass
class NotifierService:
    workers: list[ChannelWorker]

    def worker(self, channel: str) -> ChannelWorker:
        return next(w for w in self.workers if w.channel == channel)

    async def run(self, stop: asyncio.Event) -> None:
        log.info(
            "notifier ready", extra={"event": "notifier_ready",
                                     "channels": [w.channel for w in self.workers]},
        )  # fmt: skip
        if not self.workers:
            # Nothing to deliver, but stay up: a service that exits at once is restarted
            # in a loop by compose/systemd and its health check never settles.
            await stop.wait()
            return
        await asyncio.gather(*(worker.run(stop) for worker in self.workers))
