"""Cooldowns after a change and warm-up after a start or a resize.

cooldown_up_s: no scale-up of a resource sooner than this after its last scale-up.
cooldown_down_s: no scale-down of a resource sooner than this after its last change
of either kind (shrinking right after growing is the flap worth preventing; growing
right after shrinking is never delayed by a scale-down's cooldown).
warmup_s: no decision while the container has run for less than this, or was resized
by the decider less than this ago; readings taken then are not representative.
"""

from __future__ import annotations

from services.decider.policy.state import ContainerState, ResourceState
from shared.config import ScalingPolicy
from shared.models import ContainerReading


def cooling_down_up(state: ResourceState, at: float, policy: ScalingPolicy) -> bool:
    last = state.last_up_at
    return last is not None and at - last < policy.cooldown_up_s


def cooling_down_down(state: ResourceState, at: float, policy: ScalingPolicy) -> bool:
    last = state.last_change_at
    return last is not None and at - last < policy.cooldown_down_s


def warming_up(reading: ContainerReading, state: ContainerState, at: float, policy: ScalingPolicy) -> bool:
    if policy.warmup_s <= 0:
        return False
    if reading.running_for_s is not None and reading.running_for_s < policy.warmup_s:
        return True
    resized = state.last_resize_at
    return resized is not None and at - resized < policy.warmup_s
