"""Threshold mode for one resource: the original's proportional steps, capped to the
tier's limits, with scale-downs passed through the stabilization window."""

from __future__ import annotations

from services.decider.policy.proposal import Proposal, Resource, bounds_for
from services.decider.policy.stabilization import clear_run, stabilize_down
from services.decider.policy.state import ResourceState
from services.decider.policy.steps import (
    cpu_down_target,
    cpu_up_increment,
    memory_down_target,
    memory_up_increment,
)
from services.decider.policy.thresholds import is_above, is_below
from shared.config import ScalingPolicy


def threshold_step(
    resource: Resource,
    usage: float,
    current: int,
    state: ResourceState,
    at: float,
    policy: ScalingPolicy,
    multiplier: float,
) -> tuple[Proposal | None, ResourceState]:
    """The proposal (if any) and the resource state to keep if it is not carried out."""
    upper, lower = _thresholds(resource, policy)
    if is_above(usage, upper, policy.tolerance):
        return _scale_up(resource, usage, current, clear_run(state), at, policy, multiplier)
    if is_below(usage, lower, policy.tolerance) and current > bounds_for(resource, policy).minimum:
        return _scale_down(resource, usage, current, state, at, policy, multiplier)
    return None, clear_run(state)


def _scale_up(
    resource: Resource,
    usage: float,
    current: int,
    kept: ResourceState,
    at: float,
    policy: ScalingPolicy,
    multiplier: float,
) -> tuple[Proposal | None, ResourceState]:
    if resource == "cpu":
        wanted = current + cpu_up_increment(usage, policy)
    else:
        wanted = current + memory_up_increment(usage, policy, multiplier)
    bounds = bounds_for(resource, policy)
    target = bounds.clamp(wanted)
    if target <= current:
        return None, kept  # already at the tier's maximum
    # The original drops a step that would pass the maximum; we cap it instead.
    notes = (f"capped at the tier maximum {bounds.maximum}, step wanted {wanted}",) if wanted > target else ()
    upper = _thresholds(resource, policy)[0]
    return Proposal(
        resource,
        current,
        target,
        "up",
        "threshold",
        f"{resource}-above-upper",
        f"{resource} {usage:.1f}% > {upper:g}%",
        kept.model_copy(update={"last_up_at": at}),
        notes,
    ), kept


def _scale_down(
    resource: Resource,
    usage: float,
    current: int,
    state: ResourceState,
    at: float,
    policy: ScalingPolicy,
    multiplier: float,
) -> tuple[Proposal | None, ResourceState]:
    if resource == "cpu":
        recommended = cpu_down_target(usage, current, policy)
    else:
        recommended = memory_down_target(usage, current, policy, multiplier)
    window_s = policy.scale_down_stabilization_s
    target, kept = stabilize_down(state, at, recommended, current, window_s)
    if target is None:
        return None, kept
    lower = _thresholds(resource, policy)[1]
    why = f"{resource} {usage:.1f}% < {lower:g}%" + (f" for {window_s:g}s" if window_s > 0 else "")
    return Proposal(
        resource,
        current,
        target,
        "down",
        "threshold",
        f"{resource}-below-lower",
        why,
        clear_run(kept).model_copy(update={"last_down_at": at}),
        facts={f"{resource}_recommended": recommended, "stabilization_s": window_s},
    ), kept


def _thresholds(resource: Resource, policy: ScalingPolicy) -> tuple[float, float]:
    if resource == "cpu":
        return policy.cpu_upper_threshold, policy.cpu_lower_threshold
    return policy.memory_upper_threshold, policy.memory_lower_threshold
