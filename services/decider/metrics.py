"""The decider's Prometheus metrics (every family is listed in docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SAMPLES = Counter("autoscale_decider_samples", "Node samples decided.", ["node"])
SAMPLES_INVALID = Counter("autoscale_decider_samples_invalid", "Samples that failed to decode, set aside.")
SAMPLES_IGNORED = Counter(
    "autoscale_decider_samples_ignored", "Samples decided on nothing (stale, too old).", ["node"]
)
DECISIONS = Counter(
    "autoscale_decider_decisions", "Containers decided (one per container per sample).", ["node"]
)
INTENTS = Counter(
    "autoscale_decider_intents",
    "Intents published, by direction and rule (rule: the policy step that proposed it).",
    ["node", "direction", "rule"],
)
STATE_CONFLICTS = Counter(
    "autoscale_decider_state_conflicts",
    "Compare-and-set writes of container state lost to another replica.",
    ["node"],
)
DECIDE_SECONDS = Histogram(
    "autoscale_decider_decide_duration_seconds",
    "Time of the pure decide() on one node sample.",
    ["node"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
