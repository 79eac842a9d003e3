"""Counts samples that could not be published, so an outage is logged once, not every cycle."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class OutageTracker:
    published: int = 0
    dropped: int = 0
    dropped_this_outage: int = 0
    in_outage: bool = False

    def record_drop(self) -> bool:
        """Count one dropped sample; True when it starts an outage (the moment to log)."""
        self.dropped += 1
        self.dropped_this_outage += 1
        started = not self.in_outage
        self.in_outage = True
        return started

    def record_publish(self) -> int | None:
        """Count one published sample; after an outage, how many were dropped during it."""
        self.published += 1
        if not self.in_outage:
            return None
        lost = self.dropped_this_outage
        self.in_outage = False
        self.dropped_this_outage = 0
        return lost
