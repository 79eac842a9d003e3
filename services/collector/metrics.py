"""The collector's Prometheus metrics (every family is listed in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SAMPLES_PUBLISHED = Counter(
    "autoscale_collector_samples_published", "Node samples the broker stored.", ["node"]
)
SAMPLES_DROPPED = Counter(
    "autoscale_collector_samples_dropped",
    "Node samples not published (broker away, no stream, encoding).",
    ["node", "reason"],
)
CYCLE_SECONDS = Histogram(
    "autoscale_collector_cycle_duration_seconds",
    "Time to read every container of the node once.",
    ["node"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CYCLES_FAILED = Counter(
    "autoscale_collector_cycles_failed", "Collection cycles that could not read the node.", ["node"]
)
