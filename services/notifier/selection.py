"""Which events are worth a notification. Pure."""

from __future__ import annotations

from shared.config import NotifierSettings
from shared.event_text import direction
from shared.models import ScaleEvent


def wanted(event: ScaleEvent, rules: NotifierSettings) -> bool:
    """Selected by outcome; an applied change also by its direction (up, down, resize)."""
    if event.outcome not in rules.outcomes:
        return False
    if event.outcome == "applied":
        return direction(event) in rules.directions
    return True


def too_old(event: ScaleEvent, now_s: float, rules: NotifierSettings) -> bool:
    """An event older than max_event_age_s (e.g. replayed after a long outage) is not sent."""
    return now_s - event.occurred_at.timestamp() > rules.max_event_age_s
