"""The publishing loop: one NodeSample per interval to `autoscale.metrics.<node>`.

Each sample has one interval to reach the broker. One that cannot (broker down, slow,
reconnecting) is dropped and counted, never queued: after an outage the decider gets
the current state, not a burst of old samples. The outage is logged once when it
starts and once when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nats.errors import Error as NatsError
from nats.js.errors import NoStreamResponseError

from services.collector import metrics
from services.collector.cycle import Collector, CycleResult
from services.collector.outage import OutageTracker
from services.collector.sources.base import SourceError
from shared import subjects
from shared.clock import Clock
from shared.codec import CodecError, encode
from shared.provisioning import SETUP_HINT

log = logging.getLogger(__name__)

_MIN_PUBLISH_TIMEOUT_S = 0.05


class CollectorService:
    def __init__(self, collector: Collector, nc: Any, clock: Clock) -> None:
        self.collector = collector
        self.nc = nc
        self.js = nc.jetstream()
        self.clock = clock
        self.subject = subjects.metrics_subject(collector.node)
        self.outage = OutageTracker()
        self.failed_cycles = 0
        self._last_source_error: str | None = None
        self._reported_skips: dict[str, str] = {}
        self._stream_missing = False

    async def run(self, stop: asyncio.Event) -> None:
        """Collect and publish on a fixed schedule until `stop` is set."""
        interval = self.collector.interval_s
        next_at = self.clock.monotonic()
        while not stop.is_set():
            await self.tick(deadline=next_at + interval)
            next_at += interval
            now = self.clock.monotonic()
            if now - next_at >= interval / 2:
                # The cycle overran: skip the missed slots instead of catching up in a burst.
                missed = int((now - next_at) // interval) + 1
                next_at += missed * interval
                log.warning(
                    "cycle overran its interval; %d slot(s) skipped",
                    missed,
                    extra={"event": "cycle_overrun", "node": self.collector.node},
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(next_at - now, 0.0))
        log.info(
            "collector stopped",
            extra={
                "event": "collector_stopped",
                "node": self.collector.node,
                "published": self.outage.published,
                "dropped": self.outage.dropped,
            },
        )

    async def tick(self, deadline: float) -> bool:
        """One cycle; True when a sample reached the broker. Never raises for a bad cycle."""
        result = await self._collect()
        if result is None:
            return False
        try:
            payload = encode(result.sample)
        except CodecError as exc:
            log.error("sample cannot be encoded: %s", exc, extra={"event": "sample_invalid"})
            self._drop("encode")
            return False
        return await self._publish(result, payload, deadline)

    async def _collect(self) -> CycleResult | None:
        started = self.clock.monotonic()
        try:
            result = await asyncio.to_thread(self.collector.collect, self.clock.now(), self.clock.monotonic())
        except SourceError as exc:
            self.failed_cycles += 1
            metrics.CYCLES_FAILED.labels(self.collector.node).inc()
            if str(exc) != self._last_source_error:  # once per distinct problem, not every cycle
                log.error("cannot read the node: %s", exc, extra={"event": "source_failed"})
                self._last_source_error = str(exc)
            return None
        except Exception:  # a bug must not stop the collector; it is logged with its trace
            self.failed_cycles += 1
            metrics.CYCLES_FAILED.labels(self.collector.node).inc()
            log.exception("collection cycle failed", extra={"event": "cycle_failed"})
            return None
        metrics.CYCLE_SECONDS.labels(self.collector.node).observe(self.clock.monotonic() - started)
        if self._last_source_error is not None:
            log.info("node readable again", extra={"event": "source_recovered"})
            self._last_source_error = None
        self._report_skips(result.skipped)
        log.debug(
            "collected",
            extra={
                "event": "cycle_done",
                "node": self.collector.node,
                "seq": result.sample.seq,
                "containers": len(result.sample.containers),
                "duration_ms": round((self.clock.monotonic() - started) * 1000, 2),
            },
        )
        return result

    async def _publish(self, result: CycleResult, payload: bytes, deadline: float) -> bool:
        if not self.nc.is_connected:
            # A publish now would sit in the client's buffer and go out, stale, on reconnect.
            self._drop("disconnected")
            return False
        # Give up a little before the next cycle is due, so a slow broker never delays it.
        timeout = max((deadline - self.clock.monotonic()) * 0.9, _MIN_PUBLISH_TIMEOUT_S)
        try:
            await self.js.publish(
                self.subject,
                payload,
                timeout=timeout,
                headers={"Nats-Msg-Id": result.sample.sample_id},
            )
        except NoStreamResponseError:
            # No stream answers: the broker came back without its store. Only setup may
            # recreate it; say so once and keep trying each cycle.
            self.outage.record_drop()
            if not self._stream_missing:
                self._stream_missing = True
                log.error(
                    "stream %s is gone; samples are dropped until it is back. To fix: %s",
                    subjects.METRICS_STREAM,
                    SETUP_HINT,
                    extra={"event": "stream_missing", "node": self.collector.node},
                )
            return False
        except (NatsError, TimeoutError, OSError) as exc:
            self._drop(type(exc).__name__)
            return False
        self._stream_missing = False
        metrics.SAMPLES_PUBLISHED.labels(self.collector.node).inc()
        lost = self.outage.record_publish()
        if lost is not None:
            log.info(
                "publishing resumed; %d sample(s) were dropped during the outage",
                lost,
                extra={"event": "publish_resumed", "node": self.collector.node, "dropped": lost},
            )
        return True

    def _drop(self, why: str) -> None:
        metrics.SAMPLES_DROPPED.labels(self.collector.node, why).inc()
        if self.outage.record_drop():
            log.warning(
                "cannot publish samples (%s); dropping them until the broker is back",
                why,
                extra={"event": "publish_outage", "node": self.collector.node},
            )

    def _report_skips(self, skipped: dict[str, str]) -> None:
        for key, why in skipped.items():
            if self._reported_skips.get(key) != why:
                log.warning(
                    "container left out of the sample: %s",
                    why,
                    extra={"event": "container_skipped", "container": key},
                )
        self._reported_skips = dict(skipped)  # forget containers that are fine again or gone
