"""Which intents go ahead: the precondition checks, as a table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from actuator_harness import HOST, intent

from services.actuator.precondition import Rejected, decide, is_expired, screen
from shared.models import ResourceSize


def size(cores: int, memory: int) -> ResourceSize:
    return ResourceSize(cores=cores, memory_mb=memory)


@pytest.mark.parametrize(
    ("current", "journal_is_mine", "dry_run", "verdict"),
    [
        (size(2, 1024), False, False, "apply"),
        (size(3, 1024), False, False, "already-applied"),
        (size(3, 1024), True, False, "recover"),
        (size(4, 1024), False, False, "stale"),
        (size(4, 1024), True, False, "stale"),
        (size(2, 1024), False, True, "dry-run"),
        (size(2, 1024), True, False, "apply"),  # journal written, command never ran
    ],
    ids=["expected", "at target", "at target after a crash", "changed since", "changed since, journaled",
         "dry run", "journaled, not yet applied"],
)  # fmt: skip
def test_the_verdict_follows_the_current_size(
    current: ResourceSize, journal_is_mine: bool, dry_run: bool, verdict: str
) -> None:
    item = intent(expected=(2, 1024), target=(3, 1024), dry_run=dry_run)
    assert decide(item, current, journal_is_mine).verdict == verdict


def test_an_intent_for_another_node_or_beyond_the_host_is_rejected() -> None:
    assert isinstance(screen(intent(node="pve2"), "pve1", HOST), Rejected)
    refused = screen(intent(target=(64, 1024)), "pve1", HOST)
    assert isinstance(refused, Rejected) and refused.code == "invalid-cores"


def test_an_intent_expires_at_its_expiry_time() -> None:
    item = intent()
    assert not is_expired(item, item.expires_at - timedelta(seconds=1))
    assert is_expired(item, item.expires_at)
