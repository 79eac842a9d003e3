"""Feeds the console's `Cluster` from the bus: the latest sample per node, every scaling
event (the most recent ones replayed at start), and the KV buckets it shows (decider
state, pauses and the dry-run switch, the actuator's journal and saved sizes, the
horizontal groups' records). Read-only: it creates no durable consumer, only ordered
ephemeral ones, so any number of replicas can run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy

from services.console.cluster import Cluster, event_view
from services.console.hub import Hub, Update
from shared import subjects
from shared.codec import CodecError, decode
from shared.models import NodeSample, ScaleEvent
from shared.observability import FOLLOWING, READINESS
from shared.validation import sanitize

log = logging.getLogger(__name__)
_DELETES = {"DEL", "PURGE"}
CHANGED_EVERY_S = 0.5  # coalesce "something changed" notices for the page


class Follower:
    def __init__(self, js: Any, cluster: Cluster, hub: Hub) -> None:
        self._js = js
        self._cluster = cluster
        self._hub = hub
        self._subs: list[Any] = []
        self._watchers: list[Any] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = asyncio.Event()
        self.ready = False
        self.invalid = 0
        self.events_replayed = 0  # how many stored events the start-up replay delivers
        self.events_seen = 0

    async def start(self, events_replayed: int) -> None:
        await self._follow_bucket(subjects.STATE_BUCKET, self._on_state)
        await self._follow_bucket(subjects.POLICY_BUCKET, self._on_policy)
        await self._follow_bucket(subjects.ACTUATOR_BUCKET, self._on_journal)
        await self._follow_bucket(subjects.BACKUP_BUCKET, self._on_backup)
        await self._follow_bucket(subjects.GROUPS_BUCKET, self._cluster.set_group_record)
        self._subs.append(await self._js.subscribe(
            subjects.METRICS_ALL, stream=subjects.METRICS_STREAM, cb=self._on_sample, ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ))  # fmt: skip
        self._subs.append(await self._js.subscribe(
            subjects.EVENTS_ALL, stream=subjects.EVENTS_STREAM, cb=self._on_event, ordered_consumer=True,
            config=await self._recent_events(events_replayed),
        ))  # fmt: skip
        self._tasks.append(asyncio.create_task(self._announce_changes()))
        self.ready = True
        READINESS.mark(FOLLOWING, True)

    async def stop(self) -> None:
        self.ready = False
        READINESS.mark(FOLLOWING, False)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        for watcher in self._watchers:
            with contextlib.suppress(Exception):
                await watcher.stop()
        self._tasks, self._subs, self._watchers = [], [], []

    async def _recent_events(self, count: int) -> ConsumerConfig:
        info = await self._js.stream_info(subjects.EVENTS_STREAM)
        first = max(info.state.first_seq, info.state.last_seq - count + 1, 1)
        self.events_replayed = max(0, info.state.last_seq - first + 1) if info.state.messages else 0
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first)

    async def _follow_bucket(self, bucket: str, apply: Callable[[str, bytes | None], None]) -> None:
        kv = await self._js.key_value(bucket)
        watcher = await kv.watchall()
        self._watchers.append(watcher)
        initial_done = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(self._watch(watcher, apply, initial_done)))
        await initial_done

    async def _watch(
        self, watcher: Any, apply: Callable[[str, bytes | None], None], initial_done: asyncio.Future[None]
    ) -> None:
        try:
            async for entry in watcher:
                if entry is not None:
                    apply(entry.key, None if entry.operation in _DELETES else entry.value)
                    self._changed.set()
                if not initial_done.done() and (entry is None or not entry.delta):
                    initial_done.set_result(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("KV watcher stopped: %s", sanitize(exc, 300), extra={"event": "watch_stopped"})
        finally:
            if not initial_done.done():
                initial_done.set_result(None)

    def _on_state(self, key: str, raw: bytes | None) -> None:
        node, _, vmid = key.partition(".")
        if vmid.isdigit():
            self._cluster.set_state(node, int(vmid), raw)

    def _on_policy(self, key: str, raw: bytes | None) -> None:
        self._cluster.set_policy(key, raw)

    def _on_journal(self, key: str, raw: bytes | None) -> None:
        self._cluster.set_journal(key, raw)

    def _on_backup(self, key: str, raw: bytes | None) -> None:
        self._cluster.set_backup(key, bool(raw))

    async def _on_sample(self, msg: Any) -> None:
        try:
            sample = decode(msg.data, NodeSample)
        except CodecError as exc:
            self._set_aside("sample", msg, exc)
            return
        self._cluster.add_sample(sample)
        self._changed.set()

    async def _on_event(self, msg: Any) -> None:
        try:
            event = decode(msg.data, ScaleEvent)
        except CodecError as exc:
            self._set_aside("event", msg, exc)
            return
        self.events_seen += 1
        self._cluster.add_event(event)
        self._hub.publish(Update("event", event_view(event)))
        self._changed.set()

    def _set_aside(self, what: str, msg: Any, exc: Exception) -> None:
        self.invalid += 1
        if what == "event":
            self.events_seen += 1
        log.warning("invalid %s ignored: %s", what, sanitize(exc, 300),
                    extra={"event": f"{what}_invalid", "subject": sanitize(msg.subject, 200)})  # fmt: skip

    async def _announce_changes(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            self._hub.publish(Update("changed", {}))
            await asyncio.sleep(CHANGED_EVERY_S)
