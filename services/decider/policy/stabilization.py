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
    if state.down_since is None and not state.window and not state.peaks:
        return state
    return state.model_copy(update={"down_since": None, "window": (), "peaks": ()})


def recent_peak(state: ResourceState, used: int | None) -> int | None:
    """The highest use of the current scale-down run, this sample's included."""
    values = [e.value for e in state.peaks[:1]] + ([used] if used is not None else [])
    return max(values) if values else None


def _with_peak(state: ResourceState, at: float, horizon: float, used: int | None) -> tuple[WindowEntry, ...]:
    if used is None:
        return state.peaks
    kept = tuple(e for e in state.peaks if e.at >= horizon and e.value > used)
    return (*kept, WindowEntry(at=at, value=used))


def stabilize_down(
    state: ResourceState,
    at: float,
    recommendation: int,
    current: int,
    window_s: float,
    used: int | None = None,
) -> tuple[int | None, ResourceState]:
    """Record a below-current recommendation (and, for memory, the use now); return the
    size to scale down to, if the window allows it now, and the resource state to keep
    either way. The run covers at least the whole window before it acts, so its peak
    use is the highest use of the window."""
    if window_s <= 0:
        return recommendation, clear_run(state)
    since = state.down_since if state.down_since is not None else at
    horizon = at - window_s
    kept = tuple(e for e in state.window if e.at >= horizon and e.value > recommendation)
    window = (*kept, WindowEntry(at=at, value=recommendation))
    peaks = _with_peak(state, at, horizon, used)
    updated = state.model_copy(update={"down_since": since, "window": window, "peaks": peaks})
    if at - since < window_s:
        return None, updated
    highest = window[0].value
    return (highest if highest < current else None), updated
