"""One container of one sample: replay check, pending intent, pauses, per-resource
proposals, gates (pause, cooldown), caps (node capacity), and the resulting intent
and state. Returns the same state object when nothing changed, so the shell writes
nothing for a container that needs nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.decider.policy.admission import Budget
from services.decider.policy.boost import boost_step
from services.decider.policy.energy import energy_step
from services.decider.policy.pause import Blocked, blocked_by_tier
from services.decider.policy.proposal import RESOURCES, Proposal, Resource
from services.decider.policy.reason import explain
from services.decider.policy.state import EMPTY_STATE, ContainerState, PendingIntent, ResourceState
from services.decider.policy.threshold import threshold_step
from services.decider.policy.thresholds import is_above, is_below
from services.decider.policy.timing import cooling_down_down, cooling_down_up, warming_up
from services.decider.policy.view import PolicyView
from shared.config import ScalingPolicy
from shared.models import ContainerReading, NodeSample, ResourceSize, ScaleIntent


@dataclass(frozen=True)
class SampleContext:
    sample: NodeSample
    view: PolicyView
    at: float  # the sample's clock, seconds since the epoch: every window is measured on it
    now: datetime  # the decider's clock: intent timestamps only
    multiplier: float  # behaviour multiplier, x0.8 off-peak
    energy: bool  # off-peak energy mode is in force


@dataclass(frozen=True)
class Outcome:
    intent: ScaleIntent | None = None
    state: ContainerState | None = None  # the new state, only when it changed
    note: str | None = None


NOTHING = Outcome()


def decide_container(
    reading: ContainerReading, ctx: SampleContext, stored: ContainerState | None, budget: Budget
) -> Outcome:
    if reading.vmid in ctx.view.ignored or reading.status != "running":
        return NOTHING
    if reading.lock:
        return Outcome(note=f"locked ({reading.lock}): left alone")
    if stored is None and not ctx.energy and _inside_dead_band(reading, ctx.view.policy_for(reading.vmid)):
        return NOTHING  # the common case, answered without building any proposal
    state = stored or EMPTY_STATE
    replay = _replayed(state, ctx, budget)
    if replay is not None:
        return replay
    pending = state.pending
    if pending is not None and _awaiting(pending, reading, ctx.at):
        _reserve(budget, pending.intent)
        return Outcome(note=f"waiting for intent {pending.intent.intent_id} to be applied")
    policy = ctx.view.policy_for(reading.vmid)
    blocked = _blocked(ctx, reading.vmid, policy)
    if blocked.everything:
        return Outcome(note="paused")
    return _decide_resources(reading, ctx, state, policy, blocked, budget)


def _inside_dead_band(reading: ContainerReading, policy: ScalingPolicy) -> bool:
    """Threshold mode with both readings between the thresholds: no step either way, and
    with no stored state there is no window or cooldown to update."""
    cpu, memory = reading.cpu_pct, reading.memory_pct
    if policy.scaling_mode != "threshold" or cpu is None or memory is None:
        return False
    tolerance = policy.tolerance
    return not (
        is_above(cpu, policy.cpu_upper_threshold, tolerance)
        or is_below(cpu, policy.cpu_lower_threshold, tolerance)
        or is_above(memory, policy.memory_upper_threshold, tolerance)
        or is_below(memory, policy.memory_lower_threshold, tolerance)
    )


def _decide_resources(
    reading: ContainerReading,
    ctx: SampleContext,
    state: ContainerState,
    policy: ScalingPolicy,
    blocked: Blocked,
    budget: Budget,
) -> Outcome:
    warming = warming_up(reading, state, ctx.at, policy)
    kept: dict[Resource, ResourceState] = {"cpu": state.cpu, "memory": state.memory}
    admitted: list[Proposal] = []
    notes: list[str] = []
    for resource in RESOURCES:
        proposal, kept[resource] = _propose(resource, reading, ctx, state, policy, budget, warming)
        if proposal is None:
            continue
        proposal, refusal = _admit(proposal, blocked, kept[resource], ctx.at, policy, budget)
        if proposal is None:
            if refusal:
                notes.append(refusal)
            continue
        admitted.append(proposal)
        kept[resource] = proposal.state
    note = "; ".join(notes) or ("warming up" if warming else None)
    if not admitted:
        if kept["cpu"] is state.cpu and kept["memory"] is state.memory:
            return Outcome(note=note)
        return Outcome(state=_stamped(state, ctx, kept, state.pending), note=note)
    intent = _intent(reading, ctx, policy, admitted)
    pending = PendingIntent(intent=intent, until=ctx.at + ctx.view.intent_ttl_s)
    return Outcome(intent=intent, state=_stamped(state, ctx, kept, pending), note=note)


def _propose(
    resource: Resource,
    reading: ContainerReading,
    ctx: SampleContext,
    state: ContainerState,
    policy: ScalingPolicy,
    budget: Budget,
    warming: bool,
) -> tuple[Proposal | None, ResourceState]:
    usage = reading.cpu_pct if resource == "cpu" else reading.memory_pct
    current = reading.cores if resource == "cpu" else reading.memory_mb
    kept = state.cpu if resource == "cpu" else state.memory
    if usage is None:
        return None, kept  # never act on missing data, in either direction
    if policy.scaling_mode == "boost":
        return boost_step(resource, usage, current, kept, ctx.at, policy, budget.free(resource), warming)
    if warming:
        return None, kept
    if ctx.energy:
        return energy_step(resource, current, kept, ctx.at, policy), kept
    proposal, kept = threshold_step(resource, usage, current, kept, ctx.at, policy, ctx.multiplier)
    if proposal is not None and proposal.target > current and _cpulimit_binds(resource, reading):
        return None, kept  # more cores cannot help: Proxmox's cpulimit caps the container below them
    return proposal, kept


def _cpulimit_binds(resource: Resource, reading: ContainerReading) -> bool:
    return resource == "cpu" and bool(reading.cpulimit) and (reading.cpulimit or 0) < reading.cores


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
    target = {"cpu": reading.cores, "memory": reading.memory_mb}
    for p in admitted:
        target[p.resource] = p.target
    return ScaleIntent.build(
        node=ctx.sample.node,
        vmid=reading.vmid,
        expected=ResourceSize(cores=reading.cores, memory_mb=reading.memory_mb),
        target=ResourceSize(cores=target["cpu"], memory_mb=target["memory"]),
        reason=explain(reading, admitted, policy, ctx.multiplier),
        source_id=ctx.sample.sample_id,
        created_at=ctx.now,
        ttl_s=ctx.view.intent_ttl_s,
        policy_version=ctx.view.version,
        dry_run=ctx.view.dry_run,
    )


def _stamped(
    state: ContainerState,
    ctx: SampleContext,
    kept: dict[Resource, ResourceState],
    pending: PendingIntent | None,
) -> ContainerState:
    return ContainerState(
        boot_id=ctx.sample.boot_id,
        seq=ctx.sample.seq,
        cpu=kept["cpu"],
        memory=kept["memory"],
        pending=pending,
    )


def _replayed(state: ContainerState, ctx: SampleContext, budget: Budget) -> Outcome | None:
    """A sample this state already reflects (a redelivery, or a retry after a lost
    compare-and-set) re-emits the intent it produced then; an older one is ignored."""
    sample = ctx.sample
    if state.seq is None or state.boot_id != sample.boot_id or state.seq < sample.seq:
        return None
    if state.seq > sample.seq:
        return Outcome(note=f"older than the state (seq {sample.seq} < {state.seq})")
    pending = state.pending
    if pending is not None and pending.intent.source_id == sample.sample_id:
        _reserve(budget, pending.intent)
        return Outcome(intent=pending.intent, note="already decided")
    return Outcome(note="already decided")


def _awaiting(pending: PendingIntent, reading: ContainerReading, at: float) -> bool:
    expected = pending.intent.expected
    return at < pending.until and reading.cores == expected.cores and reading.memory_mb == expected.memory_mb


def _reserve(budget: Budget, intent: ScaleIntent) -> None:
    budget.take("cpu", intent.target.cores - intent.expected.cores)
    budget.take("memory", intent.target.memory_mb - intent.expected.memory_mb)


def _blocked(ctx: SampleContext, vmid: int, policy: ScalingPolicy) -> Blocked:
    pauses = ctx.view.pauses
    if pauses.empty:
        return blocked_by_tier(policy.pause)
    return pauses.blocked(ctx.sample.node, vmid, policy.pause, ctx.sample.taken_at)
