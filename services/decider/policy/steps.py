"""The original LXC AutoScale step formulas (§2.6-§2.7 of the reference), kept exact.

Each function returns the raw step or target; capping to the tier's limits happens
later (`Bounds.clamp` in `resource.py`, used by `threshold.py`) and to the host's
capacity in `admission.py`, so these stay comparable line by line with the original.
"""

from __future__ import annotations

from shared.config import ScalingPolicy

BEHAVIOUR_MULTIPLIERS = {"conservative": 0.5, "normal": 1.0, "aggressive": 2.0}
OFF_PEAK_MULTIPLIER = 0.8  # the original shrinks memory steps off-peak, energy mode or not


def behaviour_multiplier(behaviour: str, off_peak: bool) -> float:
    base = BEHAVIOUR_MULTIPLIERS[behaviour]
    return base * OFF_PEAK_MULTIPLIER if off_peak else base


def cpu_up_increment(cpu_pct: float, policy: ScalingPolicy) -> int:
    proportional = int((cpu_pct - policy.cpu_upper_threshold) / policy.cpu_scale_divisor)
    return min(max(policy.core_min_increment, proportional), policy.core_max_increment)


def cpu_down_target(cpu_pct: float, cores: int, policy: ScalingPolicy) -> int:
    proportional = max(1, int((policy.cpu_lower_threshold - cpu_pct) / policy.cpu_scale_divisor))
    decrement = max(min(cores - policy.min_cores, proportional), policy.core_min_increment)
    return max(policy.min_cores, cores - decrement)


def memory_up_increment(memory_pct: float, policy: ScalingPolicy, multiplier: float) -> int:
    base = int(policy.memory_min_increment * multiplier)
    proportional = int(
        (memory_pct - policy.memory_upper_threshold)
        * policy.memory_min_increment
        / policy.memory_scale_factor
    )
    return max(base, proportional)


def memory_down_target(memory_pct: float, memory_mb: int, policy: ScalingPolicy, multiplier: float) -> int:
    proportional = max(1, int((policy.memory_lower_threshold - memory_pct) / policy.cpu_scale_divisor))
    decrement = max(
        min(memory_mb - policy.min_memory, proportional), int(policy.min_decrease_chunk * multiplier)
    )
    # The original stops at current - decrement (e.g. 600 - 128 = 472 with min 512); we clamp.
    return max(policy.min_memory, memory_mb - decrement)
