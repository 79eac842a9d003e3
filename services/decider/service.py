"""The decider's loop: connect, check what setup provisioned, follow state and policy,
then `tick` until stopped — housekeeping when due, fetch a batch from the shared
`deciders` consumer, hand it to the handler.

Survives broker restarts: the client reconnects by itself; when fetching keeps failing
the subscription and watchers are re-created (the stream objects are setup's to restore).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from services.decider.groups import GroupCoordinator
from services.decider.handler import SampleHandler
from services.decider.policy_source import PolicySource
from services.decider.state_store import StateStore
from shared import subjects
from shared.clock import Clock, SystemClock
from shared.config import AutoscaleConfig
from shared.nats_settings import connect
from shared.observability import CONSUMER_BOUND, READINESS
from shared.provisioning import StreamSettings, decider_consumer_config, verify
from shared.startup import StoppedWaiting, until_answered

log = logging.getLogger(__name__)
FETCH_TIMEOUT_S = 1.0
HOUSEKEEPING_S = 2.0  # policy file check, expired state keys
GROUPS_EVERY_S = 1.0  # horizontal groups are decided about this often
FAILURES_BEFORE_RECOVERY = 3


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
        self.nc: Client | None = None
        self.handler: SampleHandler | None = None
        self.store: StateStore | None = None
        self.groups: GroupCoordinator | None = None
        self._next_groups = 0.0
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._failures = 0
        self._resubscribe_failures = 0
        self._next_housekeeping = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        try:
            self.nc = await connect(self.config.nats, service=f"decider-{self.replica_id}", stop=stop)
        except StoppedWaiting:
            return
        js = self.nc.jetstream()
        try:
            try:
                await until_answered(
                    lambda: self._prepare(js), what=f"decider {self.replica_id} start-up", stop=stop
                )
            except StoppedWaiting:
                return
            log.info("decider %s ready", self.replica_id,
                     extra={"event": "ready", "policy_version": self.policy.view.version})  # fmt: skip
            while not stop.is_set():
                await self.tick(js)
        finally:
            await self._close()

    async def _prepare(self, js: JetStreamContext) -> None:
        """Check what setup made, load state and policy, bind the samples consumer."""
        await self._verify(js)
        if self.store is not None:
            await self.store.stop()  # an earlier try got as far as watching
        kv = await js.key_value(subjects.STATE_BUCKET)
        self.store = StateStore(kv, self._clock, self._streams.state_ttl_s)
        self.handler = SampleHandler(js, self.store, self.policy, self._clock, replica_id=self.replica_id)
        self.groups = GroupCoordinator(js, lambda: self.policy.view, self._clock.now, self.replica_id)
        await self._follow(js)
        self._subscription = await self._subscribe(js)

    async def _verify(self, js: JetStreamContext) -> None:
        """What this service uses must exist as setup made it (NotProvisionedError if not)."""
        await verify(
            js, service="decider", settings=self._streams,
            streams=[subjects.METRICS_STREAM, subjects.INTENTS_STREAM],
            consumers=[(subjects.METRICS_STREAM, decider_consumer_config(self._streams))],
            buckets=[subjects.STATE_BUCKET, subjects.POLICY_BUCKET, subjects.GROUPS_BUCKET],
        )  # fmt: skip

    async def tick(self, js: JetStreamContext) -> None:
        """One turn: housekeeping when due, one batch fetched and handled."""
        self._housekeeping()
        messages = await self._fetch(js)
        if messages and self.handler is not None:
            await self.handler.handle_batch(messages)
        await self._decide_groups()

    async def _decide_groups(self) -> None:
        now = self._clock.monotonic()
        if self.groups is None or now < self._next_groups or not self.policy.view.config.groups:
            return
        self._next_groups = now + GROUPS_EVERY_S
        try:
            await self.groups.tick()
        except Exception as exc:  # the broker away: the next turn tries again
            log.warning("deciding groups failed: %s", exc, extra={"event": "groups_failed"})

    def _housekeeping(self) -> None:
        now = self._clock.monotonic()
        if now < self._next_housekeeping:
            return
        self._next_housekeeping = now + HOUSEKEEPING_S
        self.policy.reload_if_changed()
        if self.store is not None:
            self.store.expire()

    async def _fetch(self, js: JetStreamContext) -> list[Msg]:
        """A batch, or nothing after a quiet second or a failure (counted; recovery after a few)."""
        if self._subscription is None:  # lost, and re-subscribing has not worked yet
            await self._recover(js)
            return []
        try:
            messages = await self._subscription.fetch(self.config.decider.batch, timeout=FETCH_TIMEOUT_S)
        except nats.errors.TimeoutError:
            return []
        except Exception as exc:
            self._failures += 1
            log.warning("fetching samples failed (%s): %s", self._failures, exc,
                        extra={"event": "fetch_failed"})  # fmt: skip
            await asyncio.sleep(min(0.2 * self._failures, 2.0))
            if self._failures >= FAILURES_BEFORE_RECOVERY:
                await self._recover(js)
            return []
        if self._failures:
            self._failures = 0
            await self._follow(js)  # the watchers may have missed updates while away
        return messages

    async def _follow(self, js: JetStreamContext) -> None:
        assert self.store is not None
        await self.store.start()
        await self.policy.start(await js.key_value(subjects.POLICY_BUCKET))
        if self.groups is not None:
            await self.groups.start()

    async def _subscribe(self, js: JetStreamContext) -> JetStreamContext.PullSubscription:
        subscription = await js.pull_subscribe_bind(
            consumer=subjects.DECIDER_CONSUMER, stream=subjects.METRICS_STREAM
        )
        READINESS.mark(CONSUMER_BOUND, True)
        return subscription

    async def _recover(self, js: JetStreamContext) -> None:
        """A new subscription. On a cluster the consumer may have no leader for a while after
        a server is lost; a failed try leaves no subscription (fetching from the old one would
        only time out, quietly, for ever) and the next tick tries again."""
        old, self._subscription = self._subscription, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.unsubscribe()
        try:
            await self._follow(js)
            self._subscription = await self._subscribe(js)
            self._resubscribe_failures = 0
        except Exception as exc:
            self._resubscribe_failures += 1
            log.warning("re-subscribing failed (%s), will retry: %s", self._resubscribe_failures, exc,
                        extra={"event": "resubscribe_failed"})  # fmt: skip
            await asyncio.sleep(min(0.5 * self._resubscribe_failures, 5.0))

    async def _close(self) -> None:
        await self.policy.stop()
        if self.groups is not None:
            await self.groups.stop()
        if self.store is not None:
            await self.store.stop()
        if self.nc is not None and not self.nc.is_closed:
            # Every batch is published and acknowledged before the loop looks at `stop`,
            # so flushing what is buffered is enough; nothing is left half done.
            with contextlib.suppress(Exception):
                await self.nc.flush(timeout=2)
            await self.nc.close()
