"""Scale-down stabilization, as HPA does it: act on the highest recommendation seen in
the last `window_s` seconds, and only once every recommendation in that window was
below the current size.

The window is a monotonic max-queue (values strictly decreasing from the head), so it
holds at most a handful of entries, and it exists only while a scale-down is pending:
a container that needs nothing stores nothing. Window 0 is the original's timing.
"""

from __future__ import annotations

from services.decider.policy.state import ResourceState, WindowEntry


def clear_run(state: ResourceState) -> ResourceState:
    if state.down_since is None and not state.window:
        return state
    return state.model_copy(update={"down_since": None, "window": ()})


def stabilize_down(
    state: ResourceState, at: float, recommendation: int, current: int, window_s: float
) -> tuple[int | None, ResourceState]:
    """Record a below-current recommendation; return the size to scale down to, if the
    window allows it now, and the resource state to keep either way."""
    if window_s <= 0:
        return recommendation, clear_run(state)
    since = state.down_since if state.down_since is not None else at
    horizon = at - window_s
    kept = tuple(e for e in state.window if e.at >= horizon and e.value > recommendation)
    window = (*kept, WindowEntry(at=at, value=recommendation))
    updated = state.model_copy(update={"down_since": since, "window": window})
    if at - since < window_s:
        return None, updated
    highest = window[0].value
    return (highest if highest < current else None), updated
