"""One collection cycle: read the node, turn counters into percentages, stamp a NodeSample."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from services.collector.sampling import Previous, SamplingSettings, sample
from services.collector.sources.base import MetricSource
from shared.models import NodeSample
from shared.validation import check_node_name


@dataclass(frozen=True, slots=True)
class CycleResult:
    sample: NodeSample
    skipped: dict[str, str]  # containers left out, with why


class Collector:
    """Keeps the previous counters between cycles; time comes in from the caller."""

    def __init__(
        self,
        source: MetricSource,
        *,
        node: str,
        interval_s: float,
        settings: SamplingSettings,
        boot_id: str | None = None,
    ) -> None:
        self.source = source
        self.node = check_node_name(node)
        self.interval_s = interval_s
        self.settings = settings
        # Random per process: (node, boot_id, seq) is unique even across restarts.
        self.boot_id = boot_id or secrets.token_hex(8)
        self.seq = 0
        self._previous: dict[int, Previous] = {}

    def collect(self, now: datetime, monotonic: float) -> CycleResult:
        raw = self.source.read()
        result = sample(raw, self._previous, monotonic, self.settings)
        self._previous = result.state
        self.seq += 1
        node_sample = NodeSample(
            node=self.node,
            seq=self.seq,
            boot_id=self.boot_id,
            taken_at=now,
            interval_s=self.interval_s,
            source=self.source.label,
            host=result.host,
            containers=tuple(result.readings),
        )
        return CycleResult(node_sample, raw.skipped)

    @property
    def tracked_containers(self) -> int:
        """How many containers' counters are remembered (bounded by those running now)."""
        return len(self._previous)
