"""One intent message from decode to acknowledgement.

Decode, take the container's lock, let the applier plan and act, then finish: store the
event, publish it, ack. Nothing one message does can stop the service: broker or KV
trouble, or a node lease this process no longer holds, naks the intent for a retry (it
is still valid, and expires on its own);
anything else is a bug or a poison message and ends as a terminal `failed` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import nats.errors
from nats.js.errors import Error as JetStreamError

from services.actuator import metrics
from services.actuator.applier import Applier
from services.actuator.event_builder import build_event
from services.actuator.group_applier import GroupApplier
from services.actuator.leadership import LeaseLost
from services.actuator.plan import Publish
from services.actuator.retry import Classification, one_line
from shared.codec import CodecError, decode_intent
from shared.models import AnyIntent, GroupIntent, ScaleEvent, ScaleIntent

log = logging.getLogger(__name__)

NAK_DELAY_S = 1.0  # after a broker hiccup: try the intent again soon, it is still valid
# What a broker or KV outage raises; anything else from one intent is a bug or poison.
BROKER_TROUBLE = (nats.errors.Error, JetStreamError, asyncio.TimeoutError, ConnectionError)
# Not ours to finish now: handed back to the queue, for the lease holder (or us, later).
RETRY_LATER = (*BROKER_TROUBLE, LeaseLost)


class IntentHandler:
    def __init__(
        self,
        *,
        applier: Applier,
        progress_every_s: float,
        now: Callable[[], datetime],
        groups: GroupApplier,
    ) -> None:
        self._applier = applier
        self._groups = groups
        self._progress_every_s = progress_every_s
        self._now = now
        self._locks = ContainerLocks()
        self.counts: Counter[str] = Counter()

    @property
    def locked_containers(self) -> int:
        return len(self._locks)

    async def handle(self, msg: Any) -> None:
        try:
            intent = decode_intent(msg.data)
        except CodecError as exc:
            self.counts["undecodable"] += 1
            log.error(
                "undecodable intent terminated", extra={"event": "intent_undecodable", "error": str(exc)}
            )
            await _quietly(msg.term())
            return
        if isinstance(intent, GroupIntent):
            async with self._locks.held(intent.vmid), self._keep_alive(msg):
                await self._handle_group(self._groups, intent, msg)
            return
        async with self._locks.held(intent.vmid), self._keep_alive(msg):
            await self._handle(intent, msg)

    async def _handle(self, intent: ScaleIntent, msg: Any) -> None:
        try:
            step = await self._applier.process(intent, self._progress(msg))
            event = await self._applier.finish(intent, step, msg.ack_sync)
        except RETRY_LATER as exc:
            self._retry_later(intent, exc)
            await _quietly(msg.nak(delay=NAK_DELAY_S))
            return
        except Exception as exc:  # poison or bug: one terminal event, the service goes on
            step = Publish("internal-error", self._internal_error(intent, exc))
            try:
                event = await self._applier.finish(intent, step, msg.ack_sync)
            except Exception as again:
                self._retry_later(intent, again)
                await _quietly(msg.nak(delay=NAK_DELAY_S))
                return
        self._count(event)

    async def _handle_group(self, groups: GroupApplier, intent: GroupIntent, msg: Any) -> None:
        """As `_handle`, for a group action: its journal keeps the steps, its record the event."""
        try:
            record = await groups.process(intent, self._progress(msg))
            await groups.finish(record, msg.ack_sync)
        except RETRY_LATER as exc:
            self._retry_later(intent, exc)
            await _quietly(msg.nak(delay=NAK_DELAY_S))
            return
        except Exception as exc:  # poison or bug: one terminal event, the service goes on
            self.counts["internal-error"] += 1
            text = one_line(f"{type(exc).__name__}: {exc}")
            log.exception("group intent failed on an unexpected error", extra={
                "event": "intent_internal_error", "intent_id": intent.intent_id, "vmid": intent.vmid,
                "error": text})  # fmt: skip
            try:
                record = await groups.failed(intent, text)
                await groups.finish(record, msg.ack_sync)
            except Exception as again:
                self._retry_later(intent, again)
                await _quietly(msg.nak(delay=NAK_DELAY_S))
                return
        assert record.outcome is not None
        self._count(record.outcome)

    def _count(self, event: ScaleEvent | None) -> None:
        self.counts[event.outcome if event is not None else "republished"] += 1
        if event is not None:
            metrics.count_outcome(event.node, event.vmid, event.outcome, event.detail)
            _log_event(event)

    def _internal_error(self, intent: ScaleIntent, exc: Exception) -> ScaleEvent:
        self.counts["internal-error"] += 1
        text = one_line(f"{type(exc).__name__}: {exc}")
        log.exception("intent failed on an unexpected error", extra={"event": "intent_internal_error",
                      "intent_id": intent.intent_id, "vmid": intent.vmid, "error": text})  # fmt: skip
        return build_event(intent, "failed", "internal-error", occurred_at=self._now(), message=text)

    def _retry_later(self, intent: AnyIntent, exc: BaseException) -> None:
        self.counts["retry-later"] += 1
        log.warning(
            "could not finish the intent, it will be redelivered",
            extra={"event": "intent_retry_later", "intent_id": intent.intent_id,
                   "vmid": intent.vmid, "error": f"{type(exc).__name__}: {exc}"},
        )  # fmt: skip

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


class ContainerLocks:
    """One intent per container at a time (FIFO); a lock lives only while someone holds
    or waits for it, so the map does not grow with every container ever seen."""

    def __init__(self) -> None:
        self._locks: dict[int, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @contextlib.asynccontextmanager
    async def held(self, vmid: int) -> AsyncIterator[None]:
        lock, users = self._locks.get(vmid, (asyncio.Lock(), 0))
        self._locks[vmid] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[vmid]
            if users == 1:
                del self._locks[vmid]
            else:
                self._locks[vmid] = (lock, users - 1)


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
