"""One intent message from decode to acknowledgement.

Order matters: publish the event, then `ack_sync()` the intent, then clear the journal.
A crash anywhere before the ack means redelivery, and the journal makes the retry
report the change instead of making it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.js.errors import NotFoundError

from services.actuator.applier import Applier, Report
from services.actuator.retry import Classification
from shared import subjects
from shared.codec import CodecError, decode, encode
from shared.models import ScaleEvent, ScaleIntent

log = logging.getLogger(__name__)

NAK_DELAY_S = 1.0  # after a broker hiccup: try the intent again soon, it is still valid


class IntentHandler:
    def __init__(
        self,
        *,
        js: Any,
        applier: Applier,
        progress_every_s: float,
        checkpoint: Callable[[str], None] = lambda step: None,
    ) -> None:
        self._js = js
        self._applier = applier
        self._progress_every_s = progress_every_s
        self._checkpoint = checkpoint
        # One intent per container at a time; different containers run side by side.
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.counts: Counter[str] = Counter()

    async def handle(self, msg: Any) -> None:
        try:
            intent = decode(msg.data, ScaleIntent)
        except CodecError as exc:
            self.counts["undecodable"] += 1
            log.error(
                "undecodable intent terminated", extra={"event": "intent_undecodable", "error": str(exc)}
            )
            await _quietly(msg.term())
            return
        async with self._locks[intent.vmid], self._keep_alive(msg):
            try:
                report = await self._applier.process(intent, self._progress(msg))
                await self._finish(intent, report, msg)
            except Exception as exc:  # broker or KV trouble: the intent stays queued
                self.counts["retry-later"] += 1
                log.warning(
                    "could not finish the intent, it will be redelivered",
                    extra={"event": "intent_retry_later", "intent_id": intent.intent_id,
                           "vmid": intent.vmid, "error": f"{type(exc).__name__}: {exc}"},
                )  # fmt: skip
                await _quietly(msg.nak(delay=NAK_DELAY_S))

    async def _finish(self, intent: ScaleIntent, report: Report, msg: Any) -> None:
        event = report.event
        if report.journaled and not report.republish:
            await self._applier.settle(intent, event)
        await self.publish(event, check_stored=report.republish)
        self._checkpoint("publish")
        await msg.ack_sync()
        self.counts[event.outcome] += 1
        if report.journaled:
            await self._applier.clear(intent)
        _log_event(event)

    async def publish(self, event: ScaleEvent, *, check_stored: bool = False) -> None:
        """Publish with the event id as Nats-Msg-Id, so a second copy is dropped by the stream.

        After a crash the copy may be older than the duplicate window; then the last stored
        event of the container is compared too.
        """
        subject = subjects.events_subject(event.node, event.vmid)
        if check_stored and await self._is_last_stored(subject, event.event_id):
            return
        await self._js.publish(subject, encode(event), headers={"Nats-Msg-Id": event.event_id})

    async def _is_last_stored(self, subject: str, event_id: str) -> bool:
        try:
            last = await self._js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except NotFoundError:
            return False
        headers = last.headers or {}
        return bool(headers.get("Nats-Msg-Id") == event_id)

    def _progress(self, msg: Any) -> Callable[[int, Classification], Any]:
        async def report(attempt: int, verdict: Classification) -> None:
            self.counts["retries"] += 1
            await _quietly(msg.in_progress())

        return report

    @contextlib.asynccontextmanager
    async def _keep_alive(self, msg: Any) -> AsyncIterator[None]:
        """Tell the server we are still working, so ack_wait never expires mid-intent."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self._progress_every_s)
                await _quietly(msg.in_progress())

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _quietly(call: Any) -> None:
    # An ack-family call that fails (broker gone) only delays redelivery; never crash for it.
    try:
        await call
    except Exception as exc:
        log.debug("acknowledgement call failed: %s", exc)


def _log_event(event: ScaleEvent) -> None:
    level = logging.WARNING if event.outcome in ("failed", "rejected") else logging.INFO
    log.log(
        level,
        "intent %s: %s",
        event.outcome,
        event.detail,
        extra={
            "event": f"intent_{event.outcome}",
            "node": event.node,
            "vmid": event.vmid,
            "intent_id": event.intent_id,
            "detail": event.detail,
            "text": event.message,
            "attempts": event.attempts,
            "duration_ms": round(event.duration_ms, 1),
        },
    )
