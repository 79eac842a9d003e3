"""The decider's loop: connect, check what setup provisioned, follow state and policy,
fetch samples from the shared `deciders` consumer in batches, hand them to the handler,
until stopped.

Survives broker restarts: the client reconnects by itself; when fetching keeps failing
the subscription and watchers are re-created (the stream objects are setup's to restore).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import nats.errors

from services.decider.handler import SampleHandler
from services.decider.policy_source import PolicySource
from services.decider.state_store import StateStore
from shared import subjects
from shared.clock import Clock, SystemClock
from shared.config import AutoscaleConfig
from shared.nats_settings import connect
from shared.observability import CONSUMER_BOUND, READINESS
from shared.provisioning import StreamSettings, decider_consumer_config, verify

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 1.0
RELOAD_CHECK_S = 2.0


class DeciderService:
    def __init__(
        self,
        config: AutoscaleConfig,
        *,
        config_path: Path | None = None,
        replica_id: str = "decider",
        clock: Clock | None = None,
        stream_settings: StreamSettings | None = None,
    ) -> None:
        self.config = config
        self.replica_id = replica_id
        self._clock = clock or SystemClock()
        self._streams = stream_settings or StreamSettings()
        self.policy = PolicySource(config, config_path)
        self.nc: Any = None
        self.handler: SampleHandler | None = None

    async def run(self, stop: asyncio.Event) -> None:
        self.nc = await connect(self.config.nats, service=f"decider-{self.replica_id}")
        js = self.nc.jetstream()
        try:
            await self._verify(js)
            store = StateStore(await js.key_value(subjects.STATE_BUCKET))
            self.handler = SampleHandler(js, store, self.policy, self._clock, replica_id=self.replica_id)
            await self._follow(js, store)
            log.info("decider %s ready", self.replica_id,
                     extra={"event": "ready", "policy_version": self.policy.view.version})  # fmt: skip
            await self._loop(js, store, stop)
        finally:
            await self._close()

    async def _verify(self, js: Any) -> None:
        """What this service uses must exist as setup made it (NotProvisionedError if not)."""
        await verify(
            js, service="decider", settings=self._streams,
            streams=[subjects.METRICS_STREAM, subjects.INTENTS_STREAM],
            consumers=[(subjects.METRICS_STREAM, decider_consumer_config(self._streams))],
            buckets=[subjects.STATE_BUCKET, subjects.POLICY_BUCKET],
        )  # fmt: skip

    async def _follow(self, js: Any, store: StateStore) -> None:
        await store.start()
        await self.policy.start(await js.key_value(subjects.POLICY_BUCKET))

    async def _loop(self, js: Any, store: StateStore, stop: asyncio.Event) -> None:
        assert self.handler is not None
        subscription = await self._subscribe(js)
        failures = 0
        next_reload = asyncio.get_running_loop().time() + RELOAD_CHECK_S
        while not stop.is_set():
            if asyncio.get_running_loop().time() >= next_reload:
                self.policy.reload_if_changed()
                next_reload = asyncio.get_running_loop().time() + RELOAD_CHECK_S
            try:
                messages = await subscription.fetch(self.config.decider.batch, timeout=FETCH_TIMEOUT_S)
            except nats.errors.TimeoutError:
                continue
            except Exception as exc:
                failures += 1
                log.warning("fetching samples failed (%s): %s", failures, exc,
                            extra={"event": "fetch_failed"})  # fmt: skip
                await asyncio.sleep(min(0.2 * failures, 2.0))
                if failures >= 3:
                    subscription = await self._recover(js, store, subscription)
                continue
            if failures:
                failures = 0
                await self._follow(js, store)  # the watchers may have missed updates while away
            await self.handler.handle_batch(messages)

    async def _subscribe(self, js: Any) -> Any:
        subscription = await js.pull_subscribe_bind(
            consumer=subjects.DECIDER_CONSUMER, stream=subjects.METRICS_STREAM
        )
        READINESS.mark(CONSUMER_BOUND, True)
        return subscription

    async def _recover(self, js: Any, store: StateStore, subscription: Any) -> Any:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        try:
            await self._follow(js, store)
            return await self._subscribe(js)
        except Exception as exc:
            log.warning("re-subscribing failed, will retry: %s", exc, extra={"event": "resubscribe_failed"})
            return subscription

    async def _close(self) -> None:
        await self.policy.stop()
        if self.nc is not None and not self.nc.is_closed:
            # Every batch is published and acknowledged before the loop looks at `stop`,
            # so flushing what is buffered is enough; nothing is left half done.
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            await self.nc.close()
