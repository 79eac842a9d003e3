"""Threshold mode for one resource: the original's proportional steps, capped to the
tier's limits, with scale-downs passed through the stabilization window."""

from __future__ import annotations

from services.decider.policy.proposal import Proposal
from services.decider.policy.resource import ResourceView
from services.decider.policy.stabilization import clear_run, stabilize_down
from services.decider.policy.state import ResourceState


def threshold_step(
    view: ResourceView, usage: float, at: float
) -> tuple[Proposal | None, ResourceState]:
    """The proposal (if any) and the resource state to keep if it is not carried out."""
    if view.above(usage):
        return _scale_up(view, usage, clear_run(view.state), at)
    if view.below(usage) and view.current > view.bounds.minimum:
        return _scale_down(view, usage, at)
    return None, clear_run(view.state)


def _scale_up(
    view: ResourceView, usage: float, kept: ResourceState, at: float
) -> tuple[Proposal | None, ResourceState]:
    wanted = view.grown(usage)
    target = view.bounds.clamp(wanted)
    if target <= view.current:
        return None, kept  # already at the tier's maximum
    # The original drops a step that would pass the maximum; we cap it instead.
    capped = f"capped at the tier maximum {view.bounds.maximum}, step wanted {wanted}"
    notes = (capped,) if wanted > target else ()
    return Proposal(
        view.name,
        view.current,
        target,
        "up",
        "threshold",
        f"{view.name}-above-upper",
        f"{view.name} {usage:.1f}% > {view.upper:g}%",
        kept.model_copy(update={"last_up_at": at}),
        notes,
    ), kept


def _scale_down(view: ResourceView, usage: float, at: float) -> tuple[Proposal | None, ResourceState]:
    recommended = view.shrunk(usage)
    window_s = view.policy.scale_down_stabilization_s
    target, kept = stabilize_down(view.state, at, recommended, view.current, window_s)
    if target is None:
        return None, kept
    why = f"{view.name} {usage:.1f}% < {view.lower:g}%" + (f" for {window_s:g}s" if window_s > 0 else "")
    return Proposal(
        view.name,
        view.current,
        target,
        "down",
        "threshold",
        f"{view.name}-below-lower",
        why,
        clear_run(kept).model_copy(update={"last_down_at": at}),
        facts={f"{view.name}_recommended": recommended, "stabilization_s": window_s},
    ), kept
