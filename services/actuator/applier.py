"""Take one decoded intent to its outcome: check, back up, journal, change, verify.

Returns the event to publish; the caller publishes it, acknowledges the intent and
clears the journal, in that order (see docs/actuator.md for the crash analysis).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.actuator.commands import (
    ConfigUnreadable,
    HostLimits,
    Resize,
    argv,
    parse_config,
    read_config,
)
from services.actuator.event_builder import build_event
from services.actuator.execution import OnRetry, run_with_retries
from services.actuator.executors.base import Executor
from services.actuator.precondition import Rejected, decide, is_expired, screen
from services.actuator.records import BackupRecord, JournalEntry
from services.actuator.retry import Classification, Kind, RetryPolicy
from services.actuator.store import ActuatorStore
from shared.clock import Clock
from shared.models import EventOutcome, ResourceSize, ScaleEvent, ScaleIntent

log = logging.getLogger(__name__)

APPLIED_DETAIL = "resized"


@dataclass(frozen=True)
class ApplierSettings:
    node: str
    limits: HostLimits
    pct_path: str
    policy: RetryPolicy


@dataclass(frozen=True)
class Report:
    event: ScaleEvent
    journaled: bool  # the journal holds this intent and must be cleared after the ack
    republish: bool = False  # recovered after a crash: the event may already be stored


@dataclass(frozen=True)
class _Read:
    size: ResourceSize | None
    failure: Classification | None
    attempts: int


class Applier:
    def __init__(
        self,
        *,
        settings: ApplierSettings,
        executor: Executor,
        store: ActuatorStore,
        clock: Clock,
        checkpoint: Callable[[str], None] = lambda step: None,
        publish_orphan: Callable[[ScaleEvent], Awaitable[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._executor = executor
        self._store = store
        self._clock = clock
        self._checkpoint = checkpoint
        self._publish_orphan = publish_orphan

    async def process(self, intent: ScaleIntent, on_retry: OnRetry) -> Report:
        started = self._clock.monotonic()
        node = self._settings.node

        def event(
            outcome: EventOutcome,
            detail: str,
            *,
            message: str,
            attempts: int = 0,
            before: ResourceSize | None = None,
            after: ResourceSize | None = None,
        ) -> Report:
            built = build_event(
                intent,
                outcome,
                detail,
                occurred_at=self._clock.now(),
                duration_ms=(self._clock.monotonic() - started) * 1000,
                message=message,
                attempts=attempts,
                before=before,
                after=after,
            )
            return Report(built, journaled=False)

        screened = screen(intent, node, self._settings.limits)
        if isinstance(screened, Rejected):
            return event("rejected", screened.code, message=screened.message)
        journal = await self._store.journal(node, intent.vmid)
        mine = journal is not None and journal.intent.intent_id == intent.intent_id
        if journal is not None and mine and journal.settled is not None:
            return Report(journal.settled, journaled=True, republish=True)
        if is_expired(intent, self._clock.now()) and not mine:
            return event("skipped", "expired", message=f"intent expired at {intent.expires_at.isoformat()}")

        read = await self._read(intent.vmid, on_retry)
        if read.size is None:
            assert read.failure is not None
            return event("failed", read.failure.code, message=read.failure.message, attempts=read.attempts)
        current = read.size
        if journal is not None and not mine:
            await self._settle_orphan(journal, current)

        decision = decide(intent, current, mine)
        if decision.verdict == "recover":
            assert journal is not None
            recovered = event("applied", APPLIED_DETAIL, before=journal.before, after=current,
                              message=decision.message, attempts=1)  # fmt: skip
            return Report(recovered.event, journaled=True, republish=True)
        if decision.verdict != "apply":
            return event("skipped", decision.verdict, message=decision.message, before=current, after=current)
        applied = await self._apply(intent, screened, current, on_retry)
        return Report(
            build_event(
                intent,
                applied.outcome,
                applied.detail,
                occurred_at=self._clock.now(),
                duration_ms=(self._clock.monotonic() - started) * 1000,
                message=applied.message,
                before=current,
                after=applied.after,
                attempts=applied.attempts,
            ),
            journaled=True,
        )

    async def _apply(
        self, intent: ScaleIntent, command: Resize, current: ResourceSize, on_retry: OnRetry
    ) -> _Applied:
        node, now = self._settings.node, self._clock.now()
        record = BackupRecord(
            node=node, vmid=intent.vmid, original=current, saved_at=now, intent_id=intent.intent_id
        )
        if await self._store.save_original(record):
            log.info(
                "original size saved", extra={"event": "backup_saved", "node": node, "vmid": intent.vmid}
            )
        await self._store.write_journal(
            node, intent.vmid, JournalEntry(intent=intent, before=current, started_at=now)
        )

        done = await run_with_retries(
            self._executor, argv(command, self._settings.pct_path), self._settings.policy, on_retry=on_retry
        )
        self._checkpoint("command")
        if done.classification.kind is not Kind.OK:
            return _Applied(
                "failed", done.classification.code, done.classification.message, None, done.attempts
            )

        after = await self._read(intent.vmid, on_retry)
        if after.size is None:
            assert after.failure is not None
            message = f"changed, but reading it back failed: {after.failure.message}"
            return _Applied("failed", "verify-unreadable", message, None, done.attempts)
        if after.size != intent.target:
            found = f"cores {after.size.cores}, memory {after.size.memory_mb} MB"
            message = f"pct set succeeded but the container has {found}"
            return _Applied("failed", "verify-mismatch", message, after.size, done.attempts)
        return _Applied("applied", APPLIED_DETAIL, "", after.size, done.attempts)

    async def settle(self, intent: ScaleIntent, event: ScaleEvent) -> None:
        """Record the outcome in the journal before publishing it (crash between the two)."""
        before = event.before or intent.expected
        entry = JournalEntry(intent=intent, before=before, started_at=self._clock.now(), settled=event)
        await self._store.write_journal(self._settings.node, intent.vmid, entry)

    async def clear(self, intent: ScaleIntent) -> None:
        await self._store.clear_journal(self._settings.node, intent.vmid)

    async def _read(self, vmid: int, on_retry: OnRetry) -> _Read:
        done = await run_with_retries(
            self._executor, argv(read_config(vmid), self._settings.pct_path), self._settings.policy,
            on_retry=on_retry,
        )  # fmt: skip
        if done.classification.kind is not Kind.OK:
            return _Read(None, done.classification, done.attempts)
        try:
            config = parse_config(done.result.stdout)
        except ConfigUnreadable as exc:
            return _Read(None, Classification(Kind.PERMANENT, "config-unreadable", str(exc)), done.attempts)
        size = ResourceSize(cores=config.effective_cores(self._settings.limits), memory_mb=config.memory_mb)
        return _Read(size, None, done.attempts)

    async def _settle_orphan(self, journal: JournalEntry, current: ResourceSize) -> None:
        """Another intent's entry: it crashed mid-way and a newer intent got here first."""
        orphan = journal.intent
        if journal.settled is not None:
            event: ScaleEvent | None = journal.settled
        elif current == orphan.target:
            event = build_event(
                orphan, "applied", APPLIED_DETAIL, occurred_at=self._clock.now(),
                before=journal.before, after=current, attempts=1,
                message="the change was made before a restart; reporting it now",
            )  # fmt: skip
        else:
            event = None
        if event is not None and self._publish_orphan is not None:
            await self._publish_orphan(event)
        await self._store.clear_journal(self._settings.node, orphan.vmid)
        log.warning(
            "settled the journal of an earlier intent",
            extra={"event": "journal_orphan", "intent_id": orphan.intent_id, "vmid": orphan.vmid},
        )


@dataclass(frozen=True)
class _Applied:
    outcome: EventOutcome
    detail: str
    message: str
    after: ResourceSize | None
    attempts: int
