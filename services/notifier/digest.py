"""Digest mode: events of one interval wait together and leave as one message. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Batch(Generic[T]):
    """Items waiting for the next digest; the interval starts with the first item."""

    interval_s: float
    max_items: int
    items: list[T] = field(default_factory=list)
    opened_at: float | None = None

    def add(self, item: T, now: float) -> None:
        if self.opened_at is None:
            self.opened_at = now
        self.items.append(item)

    def due(self, now: float) -> bool:
        if not self.items or self.opened_at is None:
            return False
        return len(self.items) >= self.max_items or now - self.opened_at >= self.interval_s

    def take(self) -> list[T]:
        items, self.items, self.opened_at = self.items, [], None
        return items
