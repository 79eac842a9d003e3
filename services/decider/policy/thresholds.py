"""When a usage figure counts as above or below a threshold, with an optional tolerance band.

`tolerance` widens the dead band as a fraction of the threshold (HPA-style): with
upper 80 and tolerance 0.1 a scale-up needs more than 88 %. Tolerance 0 is the original.
"""

from __future__ import annotations


def is_above(usage_pct: float, upper: float, tolerance: float) -> bool:
    return usage_pct > upper * (1.0 + tolerance)


def is_below(usage_pct: float, lower: float, tolerance: float) -> bool:
    return usage_pct < lower * (1.0 - tolerance)
