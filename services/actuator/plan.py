"""What to do next with one intent, given what is known so far. Pure.

The applier calls `plan` in a loop: it does the step it gets, adds what it learned to
the facts, and asks again, until a terminal step (`Publish` or `Acknowledge`). Each
case below is one row of the crash analysis in docs/actuator.md and of the table in
tests/unit/test_actuator_plan.py; the case name travels with the step for logs.

The outcome of an intent is decided once: `Publish` stores the event in the journal
before it is published, and a redelivered intent whose event is stored republishes that
same event (same event id, so the stream drops the copy) instead of judging again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.actuator.commands import Resize
from services.actuator.event_builder import build_event
from services.actuator.precondition import Rejected, is_expired, size_text
from services.actuator.records import JournalEntry, OutcomeRecord
from shared.models import EventOutcome, ResourceSize, ScaleEvent, ScaleIntent

APPLIED_DETAIL = "resized"
RECOVERED = "the change was made before a restart; reporting it now"


@dataclass(frozen=True)
class Failure:
    code: str  # becomes the event's detail
    message: str


@dataclass(frozen=True)
class Reading:
    """One `pct config` read (with its retries): the size, or why there is none."""

    size: ResourceSize | None
    failure: Failure | None
    attempts: int
    pending: tuple[tuple[str, str], ...] = ()  # cores/memory left under [pve:pending]


@dataclass(frozen=True)
class ChangeResult:
    """`pct set` and the read-back after it."""

    command_failure: Failure | None
    readback: Reading | None  # None when the command failed and nothing can be pending
    attempts: int


@dataclass(frozen=True)
class Facts:
    """Everything the plan may look at. The applier fills it in, step by step."""

    screened: Resize | Rejected  # the command the intent asks for, or why it must not run
    record: OutcomeRecord | None  # this intent's stored outcome, if it was decided before
    inflight: JournalEntry | None  # the container's in-flight entry (any intent's)
    orphan_record: OutcomeRecord | None = None  # the stored outcome of another intent's entry
    current: Reading | None = None  # None: not read yet
    change: ChangeResult | None = None  # None: not run yet
    received_at: datetime | None = None  # when handling began, for duration_ms


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Acknowledge:
    """Terminal: the event is stored and published already; only the ack is missing."""

    case: str


@dataclass(frozen=True)
class Publish:
    """Terminal: store the event (unless `stored`), publish it, then ack.

    `clears_inflight`: the container's in-flight entry is this intent's, delete it once
    the event is stored."""

    case: str
    event: ScaleEvent
    stored: bool = False
    clears_inflight: bool = False


@dataclass(frozen=True)
class ReadSize:
    case: str


@dataclass(frozen=True)
class SettleOrphan:
    """Another intent's entry was left by a crash: publish its event (if any), drop it."""

    case: str
    orphan: JournalEntry
    event: ScaleEvent | None


@dataclass(frozen=True)
class Change:
    """Save the original, write the in-flight entry, run `pct set`, read back."""

    case: str
    command: Resize
    before: ResourceSize


Step = Acknowledge | Publish | ReadSize | SettleOrphan | Change


# ------------------------------------------------------------------ the plan


def plan(intent: ScaleIntent, facts: Facts, now: datetime) -> Step:
    record, inflight, current = facts.record, facts.inflight, facts.current
    ours = inflight is not None and inflight.intent.intent_id == intent.intent_id
    event = _EventMaker(intent, facts.received_at or now, now)

    if record is not None and record.published:
        return Acknowledge("published-not-acked")
    if record is not None:
        return Publish("decided-not-published", record.event, stored=True, clears_inflight=ours)
    if isinstance(facts.screened, Rejected):
        return Publish("refused", event("rejected", facts.screened.code, facts.screened.message))
    if is_expired(intent, now) and not ours:
        message = f"intent expired at {intent.expires_at.isoformat()}"
        return Publish("expired", event("skipped", "expired", message))
    if current is None:
        return ReadSize("read-current")
    if current.size is None:
        assert current.failure is not None
        failed = event("failed", current.failure.code, current.failure.message, attempts=current.attempts)
        return Publish("unreadable", failed, clears_inflight=ours)
    if inflight is not None and not ours:
        return SettleOrphan(
            "orphan", inflight, _orphan_event(inflight, facts.orphan_record, current.size, now)
        )
    if facts.change is not None:
        return Publish(
            "changed", _change_event(event, facts.screened, facts.change, current.size), clears_inflight=True
        )
    return _judge(intent, current.size, inflight if ours else None, event, facts.screened)


def _judge(
    intent: ScaleIntent, current: ResourceSize, own: JournalEntry | None, event: _EventMaker, command: Resize
) -> Step:
    """The intent meets the container as it is now (`own`: its in-flight entry, if any)."""
    ours = own is not None
    if current == intent.target and own is not None:
        recovered = event("applied", APPLIED_DETAIL, RECOVERED, attempts=1, before=own.before, after=current)
        return Publish("changed-before-crash", recovered, clears_inflight=True)
    if current == intent.target:
        message = f"the container already has {size_text(current)}"
        return Publish(
            "already-applied", event("skipped", "already-applied", message, before=current, after=current)
        )
    if current != intent.expected:
        message = f"expected {size_text(intent.expected)} but the container has {size_text(current)}"
        return Publish(
            "stale", event("skipped", "stale", message, before=current, after=current), clears_inflight=ours
        )
    if intent.dry_run:
        message = f"dry run: would set {size_text(current)} -> {size_text(intent.target)}"
        return Publish("dry-run", event("skipped", "dry-run", message, before=current, after=current))
    return Change("journaled-not-changed" if ours else "apply", command, before=current)


def _change_event(
    event: _EventMaker, command: Resize, change: ChangeResult, before: ResourceSize
) -> ScaleEvent:
    attempts = change.attempts
    readback = change.readback
    if readback is not None and readback.pending:
        # PVE 7 writes a failed hotplug under [pve:pending]: not applied, whatever else is.
        values = ", ".join(f"{key} {value}" for key, value in readback.pending)
        cause = change.command_failure.message if change.command_failure else "pct set exited 0"
        message = f"Proxmox left {values} pending (applied only at the next start): {cause}"
        return event("failed", "pending", message, attempts=attempts, before=before, after=readback.size)
    if change.command_failure is not None:
        failure = change.command_failure
        return event("failed", failure.code, failure.message, attempts=attempts, before=before)
    assert readback is not None
    if readback.size is None:
        assert readback.failure is not None
        message = f"changed, but reading it back failed: {readback.failure.message}"
        return event("failed", "verify-unreadable", message, attempts=attempts, before=before)
    target = ResourceSize(cores=command.cores, memory_mb=command.memory_mb)
    if readback.size != target:
        message = f"pct set succeeded but the container has {size_text(readback.size)}"
        return event(
            "failed", "verify-mismatch", message, attempts=attempts, before=before, after=readback.size
        )
    return event("applied", APPLIED_DETAIL, "", attempts=attempts, before=before, after=readback.size)


def _orphan_event(
    entry: JournalEntry, record: OutcomeRecord | None, current: ResourceSize, now: datetime
) -> ScaleEvent | None:
    """The stored event of the crashed intent; else `applied` if the container has its
    target; else nothing (its own redelivery will judge it)."""
    if record is not None:
        return record.event
    if current == entry.intent.target:
        return build_event(
            entry.intent, "applied", APPLIED_DETAIL, occurred_at=now, before=entry.before,
            after=current, attempts=1, message=RECOVERED,
        )  # fmt: skip
    return None


class _EventMaker:
    """Builds this intent's events with one received time, so durations agree."""

    def __init__(self, intent: ScaleIntent, received_at: datetime, now: datetime) -> None:
        self._intent = intent
        self._now = now
        self._duration_ms = (now - received_at).total_seconds() * 1000

    def __call__(
        self,
        outcome: EventOutcome,
        detail: str,
        message: str,
        *,
        attempts: int = 0,
        before: ResourceSize | None = None,
        after: ResourceSize | None = None,
    ) -> ScaleEvent:
        return build_event(
            self._intent, outcome, detail, occurred_at=self._now, duration_ms=self._duration_ms,
            message=message, attempts=attempts, before=before, after=after,
        )  # fmt: skip
