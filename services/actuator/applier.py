"""Take one decoded intent to its terminal step: ask the plan, do the step, repeat.

The decisions are in `plan.py` (pure); this module only reads and writes. It returns the
terminal step (`Publish` or `Acknowledge`), which the handler finishes with `finish`
in the order docs/actuator.md explains: store the event, publish it, then ack.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from services.actuator.commands import ConfigUnreadable, HostLimits, Resize, argv, parse_config
from services.actuator.config_reader import ConfigReader
from services.actuator.execution import OnRetry, retry_attempts, run_with_retries
from services.actuator.executors.base import Executor
from services.actuator.plan import (
    Acknowledge,
    Change,
    ChangeResult,
    Facts,
    Failure,
    Publish,
    Reading,
    ReadSize,
    SettleOrphan,
    plan,
)
from services.actuator.precondition import SizeBounds, screen
from services.actuator.publisher import EventPublisher
from services.actuator.records import BackupRecord, JournalEntry, OutcomeRecord
from services.actuator.retry import COMMAND_OVERRUN_S, ResultKind, RetryPolicy
from services.actuator.store import ActuatorStore
from shared import failpoints
from shared.clock import Clock
from shared.models import ResourceSize, ScaleEvent, ScaleIntent

log = logging.getLogger(__name__)
PARAMETER_REFUSED = "invalid-value"  # retry.classify's code for `400 Parameter verification failed`
DECIDE_WITHIN_S = 1.0  # lease time left to store an outcome: one KV write, with room

Terminal = Publish | Acknowledge


class Fence(Protocol):
    """The node's lease (leadership.py): `ensure` raises unless it is ours for `for_s` more."""

    async def ensure(self, for_s: float) -> None: ...


@dataclass(frozen=True)
class ApplierSettings:
    node: str
    limits: HostLimits
    pct_path: str
    policy: RetryPolicy
    bounds: Callable[[int], SizeBounds]  # the tier bounds of a container


class Applier:
    def __init__(
        self,
        *,
        settings: ApplierSettings,
        executor: Executor,
        store: ActuatorStore,
        publisher: EventPublisher,
        clock: Clock,
        fence: Fence,
        reader: ConfigReader | None = None,
    ) -> None:
        self._settings = settings
        self._fence = fence
        self._executor = executor
        # Default: `pct config` through the executor (what a reader with no files does).
        self._reader = reader or ConfigReader(
            node=settings.node, executor=executor, pct_path=settings.pct_path, files=None
        )
        self._store = store
        self._publisher = publisher
        self._clock = clock

    async def process(self, intent: ScaleIntent, on_retry: OnRetry) -> Terminal:
        facts = await self._load(intent)
        while True:
            step = plan(intent, facts, self._clock.now())
            match step:
                case Publish() | Acknowledge():
                    return step
                case ReadSize():
                    facts = replace(facts, current=await self._read(intent.vmid, on_retry))
                case SettleOrphan(orphan=orphan, event=event):
                    await self._settle_orphan(orphan, event)
                    facts = replace(facts, inflight=None, orphan_record=None)
                case Change(command=command, before=before):
                    facts = replace(facts, change=await self._change(intent, command, before, on_retry))

    async def finish(
        self, intent: ScaleIntent, step: Terminal, acknowledge: Callable[[], Awaitable[None]]
    ) -> ScaleEvent | None:
        """Store the decided event, publish it, ack; each step survives a crash after it.

        Returns the event published: the stored one if another process decided first."""
        node = self._settings.node
        event = None
        if isinstance(step, Publish):
            event = step.event
            if not step.stored:
                await self._fence.ensure(DECIDE_WITHIN_S)
                event = (await self._store.decide(OutcomeRecord(event=step.event))).event
                await failpoints.reach("actuator.after-decide")
            if step.clears_inflight:
                await self._store.clear_journal(node, intent.vmid, intent.intent_id)
            await self._publisher.publish(event)
            await failpoints.reach("actuator.after-publish")
            await self._store.write_outcome(OutcomeRecord(event=event, published=True))
        await acknowledge()
        await failpoints.reach("actuator.after-ack")
        return event

    async def publish_and_ack(self, event: ScaleEvent, acknowledge: Callable[[], Awaitable[None]]) -> None:
        """An event that needs no journal (decided from the intent alone): publish, ack."""
        await self._publisher.publish(event)
        await acknowledge()

    async def _load(self, intent: ScaleIntent) -> Facts:
        node, vmid = self._settings.node, intent.vmid
        screened = screen(intent, node, self._settings.limits, self._settings.bounds(vmid))
        if intent.node != node:  # never touch another node's journal keys
            return Facts(screened=screened, record=None, inflight=None, received_at=self._clock.now())
        inflight = await self._store.journal(node, vmid)
        orphan = inflight.intent.intent_id if inflight is not None else intent.intent_id
        return Facts(
            screened=screened,
            record=await self._store.outcome(node, vmid, intent.intent_id),
            inflight=inflight,
            orphan_record=None
            if orphan == intent.intent_id
            else await self._store.outcome(node, vmid, orphan),
            received_at=self._clock.now(),
        )

    async def _change(
        self, intent: ScaleIntent, command: Resize, before: ResourceSize, on_retry: OnRetry
    ) -> ChangeResult:
        node, now = self._settings.node, self._clock.now()
        policy = self._settings.policy
        # Every attempt must end (killed at its timeout at worst) inside our lease.
        within_s = policy.command_timeout_s + COMMAND_OVERRUN_S
        await self._fence.ensure(within_s)
        backup = BackupRecord(
            node=node, vmid=intent.vmid, original=before, saved_at=now, intent_id=intent.intent_id
        )
        if await self._store.save_original(backup):
            log.info(
                "original size saved", extra={"event": "backup_saved", "node": node, "vmid": intent.vmid}
            )
        await failpoints.reach("actuator.after-backup")
        await self._store.write_journal(
            node, intent.vmid, JournalEntry(intent=intent, before=before, started_at=now)
        )
        await failpoints.reach("actuator.after-journal")
        done = await run_with_retries(
            self._executor, argv(command, self._settings.pct_path), policy, on_retry=on_retry,
            before_attempt=lambda: self._fence.ensure(within_s),
        )  # fmt: skip
        await failpoints.reach("actuator.after-command")
        failure = None
        if done.classification.kind is not ResultKind.OK:
            failure = Failure(done.classification.code, done.classification.message)
        if failure is not None and failure.code != PARAMETER_REFUSED:
            return ChangeResult(command_failure=failure, readback=None, attempts=done.attempts)
        # Read back after success, and after a refused value: PVE 7 may have left it pending.
        readback = await self._read(intent.vmid, on_retry)
        return ChangeResult(command_failure=failure, readback=readback, attempts=done.attempts)

    async def _read(self, vmid: int, on_retry: OnRetry) -> Reading:
        policy = self._settings.policy
        done = await retry_attempts(
            lambda: self._reader.read(vmid, policy.command_timeout_s), self._reader.label, policy,
            on_retry=on_retry,
        )  # fmt: skip
        if done.classification.kind is not ResultKind.OK:
            failure = Failure(done.classification.code, done.classification.message)
            return Reading(None, failure, done.attempts)
        try:
            config = parse_config(done.result.stdout)
        except ConfigUnreadable as exc:
            return Reading(None, Failure("config-unreadable", str(exc)), done.attempts)
        size = ResourceSize(cores=config.effective_cores(self._settings.limits), memory_mb=config.memory_mb)
        return Reading(size, None, done.attempts, pending=config.pending)

    async def _settle_orphan(self, orphan: JournalEntry, event: ScaleEvent | None) -> None:
        """Another intent's entry: it crashed mid-way and a newer intent got here first."""
        if event is not None:
            await self._fence.ensure(DECIDE_WITHIN_S)
            event = (await self._store.decide(OutcomeRecord(event=event))).event
            await self._publisher.publish(event)
            await self._store.write_outcome(OutcomeRecord(event=event, published=True))
        await self._store.clear_journal(self._settings.node, orphan.intent.vmid, orphan.intent.intent_id)
        log.warning(
            "settled the journal of an earlier intent",
            extra={
                "event": "journal_orphan",
                "intent_id": orphan.intent.intent_id,
                "vmid": orphan.intent.vmid,
            },
        )
