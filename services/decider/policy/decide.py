"""`decide`: one node sample in, intents and state changes out. Pure and deterministic:
the same sample with the same state and policy always gives the same intents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.decider.policy.admission import Budget
from services.decider.policy.container import SampleContext, decide_container, replay_only
from services.decider.policy.offpeak import is_off_peak
from services.decider.policy.state import ContainerState
from services.decider.policy.steps import behaviour_multiplier
from services.decider.policy.view import PolicyView
from shared.models import ContainerReading, NodeSample, ScaleIntent


@dataclass(frozen=True)
class Decision:
    intents: tuple[ScaleIntent, ...] = ()
    state_changes: Mapping[int, ContainerState] = field(default_factory=dict)  # by vmid
    notes: Mapping[int, str] = field(default_factory=dict)  # why a container was left alone
    ignored: str | None = None  # why the whole sample was ignored (stale)
    resent: tuple[ScaleIntent, ...] = ()  # decided before, published again (same ids)
    refused: str | None = None  # why the whole sample was refused (it cannot be true)


def decide(
    sample: NodeSample,
    view: PolicyView,
    states: Mapping[int, ContainerState],
    now: datetime,
) -> Decision:
    """`states` maps vmid to stored state for this sample's node; `now` is the decider's
    clock, used for staleness and intent timestamps only — every window, cooldown and
    off-peak hour is measured on the sample's own `taken_at`, so replicas agree."""
    age_s = (now - sample.taken_at).total_seconds()
    if -age_s > view.max_clock_skew_s:
        return Decision(refused=f"sample from the future: taken {-age_s:.0f}s ahead of this replica's clock")
    limit_s = stale_limit_s(sample, view)
    if age_s > limit_s:
        # Nothing new is decided on it, but what it decided before goes out again.
        replays = (replay_only(r, sample, states.get(r.vmid)) for r in sample.containers)
        return Decision(
            ignored=f"stale sample: taken {age_s:.0f}s ago, limit {limit_s:.0f}s",
            resent=tuple(intent for intent in replays if intent is not None),
        )
    defaults = view.defaults
    off_peak = is_off_peak(sample.taken_at, view.zone, defaults.off_peak_start, defaults.off_peak_end)
    ctx = SampleContext(
        sample=sample,
        view=view,
        at=sample.taken_at.timestamp(),
        now=now,
        multiplier=behaviour_multiplier(defaults.behaviour, off_peak),
        energy=defaults.energy_mode and off_peak,
    )
    budget = Budget.for_node(sample, view.host_sizes.get(sample.node), defaults)
    intents: list[ScaleIntent] = []
    changes: dict[int, ContainerState] = {}
    notes: dict[int, str] = {}
    resent: list[ScaleIntent] = []
    for reading in _most_saturated_first(sample.containers, view):
        outcome = decide_container(reading, ctx, states.get(reading.vmid), budget)
        if outcome.intent is not None:
            intents.append(outcome.intent)
        if outcome.state is not None:
            changes[reading.vmid] = outcome.state
        if outcome.note is not None:
            notes[reading.vmid] = outcome.note
        if outcome.resend is not None:
            resent.append(outcome.resend)
    return Decision(intents=tuple(intents), state_changes=changes, notes=notes, resent=tuple(resent))


def stale_limit_s(sample: NodeSample, view: PolicyView) -> float:
    """A sample older than this is stale: a few of its intervals, never under min_stale_s."""
    return max(view.stale_after_intervals * sample.interval_s, view.min_stale_s)


def _most_saturated_first(
    containers: tuple[ContainerReading, ...], view: PolicyView
) -> list[ContainerReading]:
    """When the node is short, the container furthest above its threshold is served first."""

    def pressure(reading: ContainerReading) -> tuple[float, int]:
        policy = view.policy_for(reading.vmid)
        cpu = (reading.cpu_pct or 0.0) / max(policy.cpu_upper_threshold, 1.0)
        memory = (reading.memory_pct or 0.0) / max(policy.memory_upper_threshold, 1.0)
        return (-max(cpu, memory), reading.vmid)

    return sorted(containers, key=pressure)
