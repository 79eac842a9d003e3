"""How events look in `lxc-autoscale events`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from actuator_harness import intent

from services.actuator.event_builder import build_event
from services.actuator.event_format import parse_since
from shared.event_text import format_line
from shared.models import ResourceSize

T = datetime(2026, 1, 5, 12, 0, 3, tzinfo=UTC)


def test_an_applied_event_reads_as_one_line_with_the_change_and_the_reason() -> None:
    item = intent(target=(3, 1024))
    event = build_event(
        item, "applied", "resized", occurred_at=T,
        before=ResourceSize(cores=2, memory_mb=1024), after=ResourceSize(cores=3, memory_mb=1024), attempts=1,
    )  # fmt: skip
    assert format_line(event) == (
        f"2026-01-05 12:00:03 pve1/101 applied scale-up cores 2→3 memory 1024→1024 MB "
        f"(cpu 95% > 80%) [intent {item.intent_id[:8]}…]"
    )


def test_a_failed_event_shows_the_error_and_the_attempts_without_control_characters() -> None:
    event = build_event(
        intent(), "failed", "locked", occurred_at=T, message="CT is locked\n(backup)", attempts=4
    )
    line = format_line(event)
    assert "failed locked: CT is locked (backup)" in line and "after 4 attempts" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", datetime(2026, 1, 5, 11, 30, 3, tzinfo=UTC)),
        ("2h", datetime(2026, 1, 5, 10, 0, 3, tzinfo=UTC)),
        ("2026-01-01T08:00", datetime(2026, 1, 1, 8, 0, tzinfo=UTC)),
    ],
)
def test_since_accepts_relative_and_absolute_times(text: str, expected: datetime) -> None:
    assert parse_since(text, T) == expected


def test_since_refuses_nonsense_with_an_example() -> None:
    with pytest.raises(ValueError, match="30m"):
        parse_since("yesterday-ish", T)
