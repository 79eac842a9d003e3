"""A circuit breaker per endpoint: closed → open after N failures in a row →
half-open after a pause (one trial call) → closed on success, open again on failure.

Pure: the caller passes the monotonic time; nothing here sleeps or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

BreakerState = Literal["closed", "open", "half-open"]


@dataclass(frozen=True)
class Breaker:
    failure_threshold: int
    reset_after_s: float
    state: BreakerState = "closed"
    failures: int = 0  # consecutive failures while closed
    opened_at: float = 0.0
    trial_in_flight: bool = False

    def allows(self, now: float) -> bool:
        """May a call go out now? (Call `begin` before making it.)"""
        if self.state == "closed":
            return True
        if self.state == "open":
            return now - self.opened_at >= self.reset_after_s
        return not self.trial_in_flight

    def begin(self, now: float) -> Breaker:
        """A call is starting: an open breaker whose pause is over lets one trial through."""
        if self.state == "open" and now - self.opened_at >= self.reset_after_s:
            return replace(self, state="half-open", trial_in_flight=True)
        if self.state == "half-open":
            return replace(self, trial_in_flight=True)
        return self

    def succeeded(self) -> Breaker:
        return replace(self, state="closed", failures=0, trial_in_flight=False)

    def abandoned(self) -> Breaker:
        """The call ended without telling anything about the endpoint (e.g. cancelled)."""
        return replace(self, trial_in_flight=False)

    def failed(self, now: float) -> Breaker:
        if self.state == "half-open":
            return replace(self, state="open", opened_at=now, trial_in_flight=False)
        failures = self.failures + 1
        if failures >= self.failure_threshold:
            return replace(self, state="open", failures=failures, opened_at=now)
        return replace(self, failures=failures)

    def retry_in(self, now: float) -> float:
        """Seconds until an open breaker lets a trial call through (0 when it does now)."""
        if self.state != "open":
            return 0.0
        return max(0.0, self.reset_after_s - (now - self.opened_at))
