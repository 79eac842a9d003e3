"""The `DecisionReason` an intent carries: rule, inputs, thresholds, state, one human line."""

from __future__ import annotations

from collections.abc import Sequence

from services.decider.policy.proposal import Proposal
from services.decider.policy.resource import label_of
from shared.config import ScalingPolicy
from shared.models import ContainerReading, DecisionReason, Scalar


def explain(
    reading: ContainerReading, proposals: Sequence[Proposal], policy: ScalingPolicy, multiplier: float
) -> DecisionReason:
    parts = []
    state: dict[str, Scalar] = {}
    for p in proposals:
        label, unit = label_of(p.resource)
        notes = f" ({'; '.join(p.notes)})" if p.notes else ""
        parts.append(f"{p.why}: {label} {p.current} → {p.target}{unit}{notes}")
        state.update(p.facts)
    return DecisionReason(
        rule="+".join(p.rule for p in proposals)[:64],
        summary=f"ct {reading.vmid}: " + "; ".join(parts),
        inputs={
            "cpu_pct": reading.cpu_pct,
            "memory_pct": reading.memory_pct,
            "cores": reading.cores,
            "memory_mb": reading.memory_mb,
            "running_for_s": reading.running_for_s,
        },
        thresholds={
            "cpu_upper": policy.cpu_upper_threshold,
            "cpu_lower": policy.cpu_lower_threshold,
            "memory_upper": policy.memory_upper_threshold,
            "memory_lower": policy.memory_lower_threshold,
            "min_cores": policy.min_cores,
            "max_cores": policy.max_cores,
            "min_memory": policy.min_memory,
            "max_memory": policy.max_memory,
            "tolerance": policy.tolerance,
            "behaviour_multiplier": multiplier,
            "scaling_mode": policy.scaling_mode,
        },
        state=state,
    )
