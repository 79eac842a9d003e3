"""Threshold mode for one resource: the original's proportional steps, capped to the
tier's limits, with scale-downs passed through the stabilization window.

A scale-up acts on the first sample that shows the container saturated (usage at or
above `saturation_threshold`). Usage above the upper threshold but short of saturation
must have lasted `scale_up_sustain_s` of measured time, counting the interval each
sample averages: at the default 10 s interval one sample is enough, as before; at 1 s
it takes ten in a row, so a short interval does not turn noise into changes.
"""

from __future__ import annotations

import math

from services.decider.policy.proposal import Proposal
from services.decider.policy.resource import ResourceView
from services.decider.policy.stabilization import clear_run, stabilize_down
from services.decider.policy.state import ResourceState


def threshold_step(view: ResourceView, usage: float, at: float) -> tuple[Proposal | None, ResourceState]:
    """The proposal (if any) and the resource state to keep if it is not carried out."""
    if view.above(usage):
        kept = _above_since(clear_run(view.state), at - view.covers_s)
        assert kept.up_since is not None
        if not view.saturated(usage) and at - kept.up_since < view.policy.scale_up_sustain_s:
            return None, kept  # above, not starved, not for long enough yet
        return _scale_up(view, usage, kept, at)
    state = _above_since(view.state, None)
    if view.below(usage) and view.current > view.bounds.minimum:
        return _scale_down(view, state, usage, at)
    return None, clear_run(state)


def _above_since(state: ResourceState, since: float | None) -> ResourceState:
    """Start (or end, with None) the run above the upper threshold; an ongoing run keeps
    its start, and an unchanged state stays the same object (nothing to write)."""
    if since is not None and state.up_since is not None:
        return state
    if since == state.up_since:
        return state
    return state.model_copy(update={"up_since": since})


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
        kept.model_copy(update={"last_up_at": at, "up_since": None}),
        notes,
    ), kept


def _scale_down(
    view: ResourceView, state: ResourceState, usage: float, at: float
) -> tuple[Proposal | None, ResourceState]:
    recommended = view.shrunk(usage)
    window_s = view.policy.scale_down_stabilization_s
    used = None if view.used is None else math.ceil(view.used)
    target, kept = stabilize_down(state, at, recommended, view.current, window_s, used)
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
