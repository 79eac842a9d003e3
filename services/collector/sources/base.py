"""What every metric source provides: one raw read of the whole node per call."""

from __future__ import annotations

from typing import Literal, Protocol

from services.collector.raw import RawNode

SourceLabel = Literal["cgroup", "pvesh", "sim", "api"]


class SourceError(RuntimeError):
    """The node as a whole could not be read this cycle; the text says what and where."""


class MetricSource(Protocol):
    label: SourceLabel

    def read(self) -> RawNode:
        """Read every container of the node once; raise SourceError if the node is unreadable."""
        ...
