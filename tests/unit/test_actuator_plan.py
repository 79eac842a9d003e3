"""The actuator's plan, one row per case of the crash analysis in docs/actuator.md."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import HOST, intent

from services.actuator import plan as plan_module
from services.actuator.commands import Resize
from services.actuator.event_builder import build_event
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
    Step,
    plan,
)
from services.actuator.precondition import Rejected, SizeBounds, is_expired, screen
from services.actuator.records import JournalEntry, OutcomeRecord
from shared.models import ResourceSize, ScaleIntent

ITEM = intent(expected=(2, 1024), target=(3, 1024))
NOW = ITEM.created_at + timedelta(seconds=5)
COMMAND = Resize(101, 3, 1024)
TIER = SizeBounds(cores_min=1, cores_max=4, memory_min_mb=512, memory_max_mb=4096)
OLD = intent(created_at=NOW - timedelta(seconds=300), ttl_s=60)
OTHER = intent(expected=(1, 1024), target=(2, 1024), source_id="earlier")


def size(cores: int, memory: int = 1024) -> ResourceSize:
    return ResourceSize(cores=cores, memory_mb=memory)


def read(cores: int) -> Reading:
    return Reading(size(cores), None, 1)


def entry(item: ScaleIntent) -> JournalEntry:
    return JournalEntry(intent=item, before=item.expected, started_at=item.created_at)


def stored(item: ScaleIntent, *, published: bool) -> OutcomeRecord:
    event = build_event(item, "applied", "resized", occurred_at=item.created_at)
    return OutcomeRecord(event=event, published=published)


def facts(**changes: Any) -> Facts:
    start = Facts(screened=COMMAND, record=None, inflight=None, received_at=ITEM.created_at)
    return replace(start, **changes)


def changed(command: Failure | None = None, readback: Reading | None = None) -> ChangeResult:
    return ChangeResult(command_failure=command, readback=readback, attempts=1)


def outcome(step: Step) -> tuple[str, ...]:
    match step:
        case Publish(event=event, stored=was_stored, clears_inflight=clears):
            return (step.case, event.outcome, event.detail, f"stored={was_stored}", f"clears={clears}")
        case SettleOrphan(event=event):
            return (step.case, event.outcome if event else "dropped", event.intent_id[:6] if event else "")
        case _:
            return (step.case, type(step).__name__)


ROWS: list[tuple[str, ScaleIntent, Facts, tuple[str, ...]]] = [
    ("published, crash before the ack", ITEM, facts(record=stored(ITEM, published=True)),
     ("published-not-acked", "Acknowledge")),
    ("decided, crash before publishing", ITEM,
     facts(record=stored(ITEM, published=False), inflight=entry(ITEM)),
     ("decided-not-published", "applied", "resized", "stored=True", "clears=True")),
    ("refused before anything is read", ITEM, facts(screened=Rejected("outside-tier", "no")),
     ("refused", "rejected", "outside-tier", "stored=False", "clears=False")),
    ("expired, nothing of ours in flight", OLD, facts(),
     ("expired", "skipped", "expired", "stored=False", "clears=False")),
    ("size not read yet", ITEM, facts(), ("read-current", "ReadSize")),
    ("expired, but ours in flight: read and recover", OLD, facts(inflight=entry(OLD)),
     ("read-current", "ReadSize")),
    ("pct config failed", ITEM, facts(current=Reading(None, Failure("unknown-container", "gone"), 1)),
     ("unreadable", "failed", "unknown-container", "stored=False", "clears=False")),
    ("another intent crashed after its change", ITEM, facts(inflight=entry(OTHER), current=read(2)),
     ("orphan", "applied", OTHER.intent_id[:6])),
    ("another intent crashed after deciding", ITEM,
     facts(inflight=entry(OTHER), orphan_record=stored(OTHER, published=False), current=read(2)),
     ("orphan", "applied", OTHER.intent_id[:6])),
    ("another intent crashed before its change", ITEM, facts(inflight=entry(OTHER), current=read(1)),
     ("orphan", "dropped", "")),
    ("the change was made before a crash", ITEM, facts(inflight=entry(ITEM), current=read(3)),
     ("changed-before-crash", "applied", "resized", "stored=False", "clears=True")),
    ("the container already has the target", ITEM, facts(current=read(3)),
     ("already-applied", "skipped", "already-applied", "stored=False", "clears=False")),
    ("the container changed since", ITEM, facts(current=read(4)),
     ("stale", "skipped", "stale", "stored=False", "clears=False")),
    ("changed since, journaled", ITEM, facts(inflight=entry(ITEM), current=read(4)),
     ("stale", "skipped", "stale", "stored=False", "clears=True")),
    ("dry run", intent(expected=(2, 1024), target=(3, 1024), dry_run=True), facts(current=read(2)),
     ("dry-run", "skipped", "dry-run", "stored=False", "clears=False")),
    ("the container has the expected size", ITEM, facts(current=read(2)), ("apply", "Change")),
    ("journaled, crash before pct set", ITEM, facts(inflight=entry(ITEM), current=read(2)),
     ("journaled-not-changed", "Change")),
    ("pct set failed", ITEM, facts(current=read(2), change=changed(Failure("locked", "CT is locked"))),
     ("changed", "failed", "locked", "stored=False", "clears=True")),
    ("read-back failed", ITEM,
     facts(current=read(2), change=changed(readback=Reading(None, Failure("timeout", "slow"), 1))),
     ("changed", "failed", "verify-unreadable", "stored=False", "clears=True")),
    ("read-back differs", ITEM, facts(current=read(2), change=changed(readback=read(2))),
     ("changed", "failed", "verify-mismatch", "stored=False", "clears=True")),
    ("left pending by PVE 7", ITEM,
     facts(current=read(2), change=changed(Failure("invalid-value", "400 Parameter verification failed."),
                                           Reading(size(3), None, 1, pending=(("memory", "2048"),)))),
     ("changed", "failed", "pending", "stored=False", "clears=True")),
    ("read-back matches", ITEM, facts(current=read(2), change=changed(readback=read(3))),
     ("changed", "applied", "resized", "stored=False", "clears=True")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("item", "known", "expected"), [row[1:] for row in ROWS], ids=[row[0] for row in ROWS]
)
def test_the_next_step_follows_from_what_is_known(
    item: ScaleIntent, known: Facts, expected: tuple[str, ...]
) -> None:
    assert outcome(plan(item, known, NOW)) == expected


def test_every_case_of_the_plan_has_a_row() -> None:
    text = Path(plan_module.__file__ or "").read_text(encoding="utf-8")
    step = r"(?:Publish|Acknowledge|ReadSize|SettleOrphan|Change)"
    steps = step + r'\(\s*"([a-z-]+)"(?: if ours else "([a-z-]+)")?'
    named = {case for found in re.findall(steps, text) for case in found if case}
    assert {row[3][0] for row in ROWS} == named


def test_a_recovered_change_reports_the_size_before_it() -> None:
    step = plan(ITEM, facts(inflight=entry(ITEM), current=read(3)), NOW)
    assert isinstance(step, Publish) and (step.event.before, step.event.after) == (size(2), size(3))


def test_the_plan_changes_only_from_the_expected_size_to_the_target() -> None:
    step = plan(ITEM, facts(current=read(2)), NOW)
    assert isinstance(step, Change) and (step.command, step.before) == (COMMAND, size(2))
    assert isinstance(plan(ITEM, facts(record=stored(ITEM, published=True)), NOW), Acknowledge)
    assert isinstance(plan(ITEM, facts(), NOW), ReadSize)


def test_an_intent_for_another_node_or_beyond_the_host_is_rejected() -> None:
    assert isinstance(screen(intent(node="pve2"), "pve1", HOST, TIER), Rejected)
    refused = screen(intent(target=(64, 1024)), "pve1", HOST, TIER)
    assert isinstance(refused, Rejected) and refused.code == "invalid-cores"


@pytest.mark.parametrize("target", [(1, 16), (1, 511), (5, 1024), (2, 8192)])
def test_a_target_outside_the_tier_is_rejected(target: tuple[int, int]) -> None:
    refused = screen(intent(target=target), "pve1", HOST, TIER)
    assert isinstance(refused, Rejected) and refused.code == "outside-tier"


def test_an_intent_expires_at_its_expiry_time() -> None:
    item = intent()
    assert not is_expired(item, item.expires_at - timedelta(seconds=1))
    assert is_expired(item, item.expires_at)
