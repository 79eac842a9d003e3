"""Horizontal groups in a decider replica: the I/O around `group_policy.decide_group`.

Every replica with a group configured follows the latest sample of every node (an
ordered consumer on the metrics stream, last message per node: the shared `deciders`
consumer gives each replica only some samples) and the groups bucket. About once a
second it decides each
configured group. Acting means first taking the group's `action.<group>` record with
compare-and-set over the revision it read, then publishing the intent: of two replicas
deciding the same group, only one wins the record, so one decision makes one intent.
A publish that fails marks the record done again, so the next decision retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from nats.js.api import DeliverPolicy
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.decider.group_policy import GroupDecision, decide_group
from services.decider.kv_watch import follow, stop_following
from services.decider.policy import PolicyView
from shared import subjects
from shared.codec import CodecError, decode, encode
from shared.groups import ActionLock, ActionOutcome, MembershipRecord
from shared.models import NodeSample
from shared.validation import sanitize

log = logging.getLogger(__name__)
_DELETES = {"DEL", "PURGE"}


class GroupCoordinator:
    def __init__(
        self, js: Any, view: Callable[[], PolicyView], now: Callable[[], datetime], replica: str
    ) -> None:
        self._js = js
        self._view = view
        self._now = now
        self._replica = replica
        self.samples: dict[str, NodeSample] = {}
        self.records: dict[str, MembershipRecord] = {}
        self.locks: dict[str, tuple[ActionLock | None, int]] = {}  # group -> (record, revision)
        self.outcomes: dict[tuple[str, str], ActionOutcome] = {}  # (group, node) -> last reported
        self.notes: dict[str, str] = {}  # the last decision's note per group (logged on change)
        self.intents = 0
        self._kv: KeyValue | None = None
        self._subscription: Any = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._watch_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Forget what was followed (after a recovery); following starts at the first tick
        with a group configured, so a decider without groups decodes no extra sample."""
        await self.stop()

    async def _follow_all(self) -> None:
        await self.stop()  # whatever a failed earlier attempt left
        self._kv = await self._js.key_value(subjects.GROUPS_BUCKET)
        self._watcher = await self._kv.watchall()
        ready = asyncio.get_running_loop().create_future()
        self._watch_task = asyncio.create_task(follow(self._watcher, self._apply_entry, ready, "groups"))
        await ready
        self._subscription = await self._js.subscribe(
            subjects.METRICS_ALL, stream=subjects.METRICS_STREAM, cb=self._on_sample,
            ordered_consumer=True, deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )  # fmt: skip

    async def stop(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None
        await stop_following(self._watch_task, self._watcher)
        self._watch_task = self._watcher = None
        self._kv = None

    async def tick(self) -> None:
        """Decide every configured group once, acting on at most one action each."""
        view = self._view()
        if self._subscription is None:
            await self._follow_all()
        for name, group in view.config.groups.items():
            lock, _ = self.locks.get(name, (None, 0))
            record = self.records.get(name)
            ended = self.outcomes.get((name, lock.node)) if lock is not None else None
            decision = decide_group(name, group, self.samples, record, lock, view, self._now(), ended)
            if decision.lock is not None:
                await self._act(decision)
            elif self.notes.get(name) != decision.note:
                log.info("group %s: %s", name, decision.note, extra={"event": "group_note", "group": name})
            self.notes[name] = decision.note

    async def _act(self, decision: GroupDecision) -> None:
        assert decision.lock is not None and self._kv is not None
        name = decision.group
        if not await self._write_lock(name, decision.lock):
            return  # another replica wrote first: its decision stands, ours is dropped
        intent = decision.intent
        if intent is None:
            log.info("group %s: %s", name, decision.note, extra={"event": "group_action_done", "group": name})
            return
        try:
            subject = subjects.intents_subject(intent.node)
            await self._js.publish(subject, encode(intent), headers={"Nats-Msg-Id": intent.intent_id})
        except Exception as exc:
            log.warning("group %s: publishing the intent failed, retried at the next decision: %s",
                        name, sanitize(exc, 300),
                        extra={"event": "group_publish_failed", "group": name})  # fmt: skip
            failed = decision.lock.model_copy(
                update={"state": "done", "done_at": self._now(), "outcome": "intent not published"}
            )
            with contextlib.suppress(Exception):
                await self._write_lock(name, failed)
            return
        self.intents += 1
        log.info("%s", intent.reason.summary, extra={
            "event": "intent", "node": intent.node, "vmid": intent.vmid, "group": name,
            "action": intent.action, "intent_id": intent.intent_id, "dry_run": intent.dry_run,
            "policy_version": intent.policy_version, "replica": self._replica,
        })  # fmt: skip

    async def _write_lock(self, name: str, lock: ActionLock) -> bool:
        assert self._kv is not None
        key = subjects.group_action_key(name)
        _, revision = self.locks.get(name, (None, 0))
        try:
            if revision:
                written = await self._kv.update(key, lock.to_bytes(), last=revision)
            else:
                written = await self._kv.create(key, lock.to_bytes())
        except KeyWrongLastSequenceError:
            log.info("group %s: another replica acted first", name,
                     extra={"event": "group_lock_lost", "group": name})  # fmt: skip
            return False
        self.locks[name] = (lock, written)
        return True

    async def _on_sample(self, msg: Any) -> None:
        try:
            sample = decode(msg.data, NodeSample)
        except CodecError:
            return  # the shared consumer's handler logs and counts invalid samples
        if msg.subject != subjects.metrics_subject(sample.node):
            return
        known = self.samples.get(sample.node)
        if known is None or sample.taken_at >= known.taken_at:
            self.samples[sample.node] = sample

    def _apply_entry(self, entry: KeyValue.Entry) -> None:
        value = None if entry.operation in _DELETES else entry.value
        self._apply(entry.key, entry.revision or 0, value)

    def _apply(self, key: str, revision: int, value: bytes | None) -> None:
        kind, _, name = key.partition(".")
        try:
            if kind == "action":
                if revision > self.locks.get(name, (None, 0))[1]:
                    self.locks[name] = (ActionLock.from_bytes(value) if value else None, revision)
            elif kind == "members":
                if value:
                    self.records[name] = MembershipRecord.from_bytes(value)
                else:
                    self.records.pop(name, None)
            elif kind == "outcome":
                self._apply_outcome(name, value)
        except ValueError as exc:
            # An unreadable action record is replaced at the next action (its revision is kept).
            if kind == "action":
                self.locks[name] = (None, revision)
            log.warning("unreadable groups record %s: %s", sanitize(key, 100), sanitize(exc, 300),
                        extra={"event": "groups_record_unreadable"})  # fmt: skip

    def _apply_outcome(self, rest: str, value: bytes | None) -> None:
        node, _, name = rest.partition(".")
        if not value:
            self.outcomes.pop((name, node), None)
            return
        outcome = ActionOutcome.from_bytes(value)
        # Only the key is guarded by the permissions (actuator-<node> writes outcome.<node>.*):
        # a record naming another node or group than its key is not believed.
        if (outcome.node, outcome.group) != (node, name):
            raise ValueError(f"outcome record for {outcome.node}/{outcome.group} under another key")
        self.outcomes[(name, node)] = outcome
