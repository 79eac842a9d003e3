"""One container of one sample: replay check, pending intent, pauses, per-resource
proposals, gates (pause, cooldown), caps (node capacity), and the resulting intent
and state. Returns the same state object when nothing changed, so the shell writes
nothing for a container that needs nothing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from services.decider.policy.admission import Budget
from services.decider.policy.boost import boost_step
from services.decider.policy.energy import energy_step
from services.decider.policy.oom import oom_step
from services.decider.policy.pause import Blocked, blocked_by_tier
from services.decider.policy.proposal import Proposal
from services.decider.policy.reason import explain
from services.decider.policy.resource import (
    RESOURCES,
    Resource,
    ResourceView,
    resource_views,
    size_of,
    sized,
    states,
)
from services.decider.policy.stabilization import recent_peak
from services.decider.policy.state import EMPTY_STATE, ContainerState, PendingIntent, ResourceState
from services.decider.policy.threshold import threshold_step
from services.decider.policy.timing import cooling_down_down, cooling_down_up, warming_up
from services.decider.policy.view import PolicyView
from shared.config import ScalingPolicy
from shared.models import ContainerReading, NodeSample, ScaleIntent


@dataclass(frozen=True)
class SampleContext:
    sample: NodeSample
    view: PolicyView
    at: float  # the sample's clock, seconds since the epoch: every window is measured on it
    now: datetime  # the decider's clock: intent timestamps only
    multiplier: float  # behaviour multiplier, x0.8 off-peak
    energy: bool  # off-peak energy mode is in force


@dataclass(frozen=True)
class ContainerResult:
    intent: ScaleIntent | None = None
    state: ContainerState | None = None  # the new state, only when it changed
    note: str | None = None
    # An intent decided from an earlier sample and not yet applied, published again: its
    # first publish may not have been stored (a stream without a leader), and the sample
    # that made it may never come back. Same id, so the stream drops a copy it holds.
    resend: ScaleIntent | None = None


NOTHING = ContainerResult()


def decide_container(
    reading: ContainerReading, ctx: SampleContext, stored: ContainerState | None, budget: Budget
) -> ContainerResult:
    if reading.vmid in ctx.view.ignored or reading.status != "running":
        return NOTHING
    if reading.lock:
        return ContainerResult(note=f"locked ({reading.lock}): left alone")
    if reading.cores_missing:
        # every intent names the cores it expects to find: without them, no decision at all
        return ContainerResult(note=f"cores unknown ({reading.cores_missing}): left alone")
    policy = ctx.view.policy_for(reading.vmid)
    state = stored or EMPTY_STATE
    views = resource_views(
        reading, policy, state, ctx.multiplier, ctx.sample.interval_s, ctx.sample.host.cores
    )
    if stored is None and not ctx.energy and _inside_dead_band(views):
        return NOTHING  # the common case, answered without building any proposal
    replay = _replayed(state, ctx, budget)
    if replay is not None:
        return replay
    pending = state.pending
    if pending is not None and _awaiting(pending, reading, ctx):
        _reserve(budget, pending.intent)
        return ContainerResult(
            resend=pending.intent, note=f"waiting for intent {pending.intent.intent_id} to be applied"
        )
    blocked = _blocked(ctx, reading.vmid, policy)
    if blocked.everything:
        return ContainerResult(note="paused")
    return _decide_resources(reading, ctx, state, views, blocked, budget)


def _inside_dead_band(views: tuple[ResourceView, ...]) -> bool:
    """Threshold mode with every reading between its thresholds: no step either way, and
    with no stored state there is no window or cooldown to update."""
    return all(
        v.policy.scaling_mode == "threshold"
        and v.usage is not None
        and not v.oom_kills
        and not v.above(v.usage)
        and not v.below(v.usage)
        for v in views
    )


def _decide_resources(
    reading: ContainerReading,
    ctx: SampleContext,
    state: ContainerState,
    views: tuple[ResourceView, ...],
    blocked: Blocked,
    budget: Budget,
) -> ContainerResult:
    policy = views[0].policy
    warming = warming_up(reading, state, ctx.at, policy)
    kept: dict[Resource, ResourceState] = {v.name: v.state for v in views}
    admitted: list[Proposal] = []
    notes: list[str] = []
    for view in views:
        proposal, kept[view.name], why_not = _propose(view, ctx, budget, warming)
        if why_not:
            notes.append(why_not)
        if proposal is None:
            continue
        proposal, refusal = _admit(proposal, blocked, kept[view.name], ctx.at, policy, budget)
        if proposal is None:
            if refusal:
                notes.append(refusal)
            continue
        admitted.append(proposal)
        kept[view.name] = proposal.state
    note = "; ".join(notes) or ("warming up" if warming else None)
    if not admitted:
        if all(kept[v.name] is v.state for v in views):
            return ContainerResult(note=note)
        return ContainerResult(state=_stamped(ctx, kept, state.pending), note=note)
    intent = _intent(reading, ctx, policy, admitted)
    pending = PendingIntent(intent=intent, until=ctx.at + ctx.view.intent_ttl_s)
    return ContainerResult(intent=intent, state=_stamped(ctx, kept, pending), note=note)


def _propose(
    view: ResourceView, ctx: SampleContext, budget: Budget, warming: bool
) -> tuple[Proposal | None, ResourceState, str | None]:
    """The proposal for one resource, the state to keep, and why nothing is proposed
    when that needs saying."""
    if view.oom_kills:
        proposal = oom_step(view, ctx.at)  # OOM kills are memory pressure, warm-up or not
        why = None if proposal else f"{view.oom_kills} OOM kill(s), but memory is at the tier maximum"
        return proposal, view.state, why
    usage = view.usage
    if usage is None:
        return None, view.state, None  # never act on missing data, in either direction
    if view.policy.scaling_mode == "boost":
        proposal, kept = boost_step(view, usage, ctx.at, budget.free(view.name), warming)
    elif warming:
        return None, view.state, None
    else:
        step = energy_step if ctx.energy else threshold_step
        proposal, kept = step(view, usage, ctx.at)
    if proposal is None:
        return None, kept, None
    if proposal.direction == "up" and proposal.kind in ("threshold", "boost"):
        if view.waiting:
            return None, kept, view.waiting  # the last growth has not taken effect yet
        if proposal.kind == "threshold" and view.held_back:
            return None, kept, "cores not grown: its cpulimit is below its cores, more cores would not help"
    if proposal.direction == "down" and view.used is not None:
        return _above_recent_use(proposal, view, kept)
    return proposal, kept, None


def _above_recent_use(
    proposal: Proposal, view: ResourceView, kept: ResourceState
) -> tuple[Proposal | None, ResourceState, str | None]:
    """Never cut memory below the highest use of the stabilization window (this sample's
    included) plus one `memory_min_increment` of headroom: below it the kernel reclaims
    and then OOM-kills inside the container, while `pct set` still succeeds."""
    peak = recent_peak(kept, math.ceil(view.used or 0.0)) or 0
    floor = peak + view.headroom
    if proposal.target >= floor:
        return proposal, kept, None
    if floor >= view.current:
        return None, kept, f"memory kept: {peak} MB used recently + {view.headroom} MB headroom"
    return proposal.capped(floor, f"kept above {peak} MB used recently + {view.headroom} MB"), kept, None


def _admit(
    proposal: Proposal,
    blocked: Blocked,
    kept: ResourceState,
    at: float,
    policy: ScalingPolicy,
    budget: Budget,
) -> tuple[Proposal | None, str | None]:
    name = proposal.resource
    if proposal.direction == "down":
        if blocked.down:
            return None, f"{name} scale-down paused"
        if proposal.kind == "threshold" and cooling_down_down(kept, at, policy):
            return None, f"{name} scale-down in cooldown"
        return proposal, None
    if blocked.up:
        return None, f"{name} scale-up paused"
    if proposal.kind == "threshold" and cooling_down_up(kept, at, policy):
        return None, f"{name} scale-up in cooldown"
    free = budget.free(name)
    wanted = proposal.target - proposal.current
    if free <= 0:
        return None, f"{name} scale-up refused: the node has no {name} left after the reserve"
    if wanted > free:
        proposal = proposal.capped(proposal.current + free, f"capped by host capacity, {free} free")
    budget.take(name, proposal.target - proposal.current)
    return proposal, None


def _intent(
    reading: ContainerReading, ctx: SampleContext, policy: ScalingPolicy, admitted: list[Proposal]
) -> ScaleIntent:
    target = {r: size_of(r, reading) for r in RESOURCES}
    for p in admitted:
        target[p.resource] = p.target
    return ScaleIntent.build(
        node=ctx.sample.node,
        vmid=reading.vmid,
        expected=sized({r: size_of(r, reading) for r in RESOURCES}),
        target=sized(target),
        reason=explain(reading, admitted, policy, ctx.multiplier),
        source_id=ctx.sample.sample_id,
        created_at=ctx.now,
        ttl_s=ctx.view.intent_ttl_s,
        policy_version=ctx.view.version,
        dry_run=ctx.view.dry_run,
    )


def _stamped(
    ctx: SampleContext, kept: dict[Resource, ResourceState], pending: PendingIntent | None
) -> ContainerState:
    sample = ctx.sample
    return ContainerState(boot_id=sample.boot_id, seq=sample.seq, at=ctx.at, pending=pending, **states(kept))


def _replayed(state: ContainerState, ctx: SampleContext, budget: Budget) -> ContainerResult | None:
    """A sample this state already reflects (a redelivery, or a retry after a lost
    compare-and-set) re-emits the intent it produced then; an older one is ignored.

    A sample taken later than the state's is never "older", whatever its seq: one forged
    seq must not make every later real sample look old."""
    sample = ctx.sample
    if state.seq is None or state.boot_id != sample.boot_id or state.seq < sample.seq:
        return None
    if state.at is not None and ctx.at > state.at:
        return None
    if state.seq > sample.seq or (state.at is not None and ctx.at < state.at):
        return ContainerResult(note=f"older than the state (seq {sample.seq} < {state.seq})")
    pending = state.pending
    if pending is not None and pending.intent.source_id == sample.sample_id:
        _reserve(budget, pending.intent)
        return ContainerResult(intent=pending.intent, note="already decided")
    return ContainerResult(note="already decided")


def replay_only(
    reading: ContainerReading, sample: NodeSample, stored: ContainerState | None
) -> ScaleIntent | None:
    """For a sample too old to decide on: the intent this very sample made before, if the
    state still holds it (its publish may have failed; the actuator turns it down itself
    if it is past its expiry or the container has changed since)."""
    if stored is None or stored.pending is None:
        return None
    if stored.boot_id != sample.boot_id or stored.seq != sample.seq:
        return None
    intent = stored.pending.intent
    return intent if intent.source_id == sample.sample_id and intent.vmid == reading.vmid else None


def _awaiting(pending: PendingIntent, reading: ContainerReading, ctx: SampleContext) -> bool:
    """Still waiting for the actuator. A dry-run intent is never applied: once dry-run is
    switched off, waiting for it out its time to live would only delay the real one."""
    if pending.intent.dry_run and not ctx.view.dry_run:
        return False
    expected = pending.intent.expected
    unchanged = reading.cores == expected.cores and reading.memory_mb == expected.memory_mb
    return ctx.at < pending.until and unchanged


def _reserve(budget: Budget, intent: ScaleIntent) -> None:
    for resource in RESOURCES:
        budget.take(resource, size_of(resource, intent.target) - size_of(resource, intent.expected))


def _blocked(ctx: SampleContext, vmid: int, policy: ScalingPolicy) -> Blocked:
    pauses = ctx.view.pauses
    if pauses.empty:
        return blocked_by_tier(policy.pause)
    return pauses.blocked(ctx.sample.node, vmid, policy.pause, ctx.sample.taken_at)
