"""Boost mode for one resource (§2.10 of the reference): after `consecutive_samples`
saturated samples, multiply the size by `boost_factor` (or `boost_fallback_factor` if
that does not fit the node), and revert to the original size after `boost_duration`.
A size changed by someone else while boosted is adopted: the record is dropped, no revert.

Unlike the original, a boost never goes past the tier's maximum.
"""

from __future__ import annotations

import math

from services.decider.policy.proposal import Direction, Proposal
from services.decider.policy.resource import ResourceView
from services.decider.policy.state import BoostRecord, ResourceState


def boost_step(
    view: ResourceView, usage: float, at: float, free: int, warming: bool
) -> tuple[Proposal | None, ResourceState]:
    state, policy = view.state, view.policy
    if state.boost is not None:
        return _while_boosted(view, state.boost, at)
    if warming:
        return None, state
    if usage / 100.0 < policy.saturation_threshold:
        return None, (state.model_copy(update={"saturated": 0}) if state.saturated else state)
    count = min(state.saturated + 1, policy.consecutive_samples)
    counted = state if count == state.saturated else state.model_copy(update={"saturated": count})
    if count < policy.consecutive_samples:
        return None, counted
    current, maximum = view.current, view.bounds.maximum
    for factor, rule in ((policy.boost_factor, "boost"), (policy.boost_fallback_factor, "boost-fallback")):
        candidate = math.ceil(current * factor)
        if maximum is not None:
            candidate = min(candidate, maximum)
        if candidate <= current:
            return None, counted  # at the tier's maximum already
        if candidate - current <= free:
            boosted = BoostRecord(original=current, boosted=candidate, at=at)
            acted = state.model_copy(update={"saturated": 0, "boost": boosted, "last_up_at": at})
            why = f"{view.name} saturated for {count} samples (x{factor:g})"
            facts = {f"{view.name}_boost_factor": factor, "boost_duration_s": policy.boost_duration}
            proposal = Proposal(view.name, current, candidate, "up", "boost", rule, why, acted, facts=facts)
            return proposal, counted
    return None, counted  # saturated but the node has no room; try again next sample


def _while_boosted(
    view: ResourceView, record: BoostRecord, at: float
) -> tuple[Proposal | None, ResourceState]:
    state, current, duration = view.state, view.current, view.policy.boost_duration
    if current != record.boosted:
        return None, state.model_copy(update={"boost": None, "saturated": 0})  # adopted
    if at - record.at < duration:
        return None, state
    original = view.bounds.clamp(record.original)
    if original == current:
        return None, state.model_copy(update={"boost": None})
    direction: Direction = "down" if original < current else "up"
    acted = state.model_copy(update={"boost": None, "saturated": 0, f"last_{direction}_at": at})
    why = f"boost of {view.name} expired after {duration:g}s"
    facts = {f"{view.name}_boosted_at": record.at}
    proposal = Proposal(
        view.name, current, original, direction, "revert", "boost-revert", why, acted, facts=facts
    )
    return proposal, state
