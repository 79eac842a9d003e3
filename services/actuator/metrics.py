"""The actuator's Prometheus metrics (every family is listed in docs/metrics.md).

`autoscale_actuator_container_intents_total` has a `vmid` label and exists only when
the operator turns it on (`--metrics-per-container`): a cluster may hold thousands.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INTENTS = Counter(
    "autoscale_actuator_intents",
    "Intents finished, by outcome (applied, skipped, failed, rejected) and detail.",
    ["node", "outcome", "detail"],
)
COMMAND_SECONDS = Histogram(
    "autoscale_actuator_command_duration_seconds",
    "Time of one pct (or API) command, each attempt.",
    ["operation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RETRIES = Counter("autoscale_actuator_retries", "Attempts retried after a transient failure.", ["operation"])
LEADER = Gauge(
    "autoscale_actuator_leader",
    "1 while this process holds the node's lease and applies its intents, 0 on standby.",
    ["node"],
)
_per_container: Counter | None = None


def enable_per_container() -> None:
    global _per_container
    if _per_container is None:
        _per_container = Counter(
            "autoscale_actuator_container_intents",
            "Intents finished per container (opt-in: one series per vmid).",
            ["node", "vmid", "outcome"],
        )


def count_outcome(node: str, vmid: int, outcome: str, detail: str) -> None:
    INTENTS.labels(node, outcome, detail).inc()
    if _per_container is not None:
        _per_container.labels(node, str(vmid), outcome).inc()
