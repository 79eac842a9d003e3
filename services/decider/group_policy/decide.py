"""`decide_group`: one group, the latest sample of every node, the group's records and
the time in; at most one intent and the group's new action record out.

The rules (docs/horizontal.md): average CPU and memory over the members running past the
readiness gate on every node; a member on a node whose sample is stale makes the group
wait; scale out when either average is above its upper threshold and fewer than
`max_instances` run; scale in when both are below their lower thresholds and more than
`min_instances` run; the grace periods count from the group's last action, as in the
original; one action at a time, held in the `action.<group>` record until its outcome
shows in samples or it expires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.decider.group_policy.members import Member, members_of
from services.decider.policy.decide import stale_limit_s
from services.decider.policy.view import PolicyView
from shared.config import HorizontalGroup
from shared.groups import ActionLock, ActionOutcome, MembershipRecord
from shared.models import DecisionReason, GroupAction, GroupIntent, NodeSample, Scalar


@dataclass(frozen=True)
class GroupDecision:
    group: str
    intent: GroupIntent | None = None
    lock: ActionLock | None = None  # write it (compare-and-set) before publishing the intent
    note: str = ""  # what was decided, or why nothing was


def stale_nodes(samples: Mapping[str, NodeSample], view: PolicyView, now: datetime) -> frozenset[str]:
    return frozenset(
        node
        for node, sample in samples.items()
        if (now - sample.taken_at).total_seconds() > stale_limit_s(sample, view)
    )


def decide_group(
    name: str,
    group: HorizontalGroup,
    samples: Mapping[str, NodeSample],
    record: MembershipRecord | None,
    lock: ActionLock | None,
    view: PolicyView,
    now: datetime,
    ended: ActionOutcome | None = None,
) -> GroupDecision:
    """`ended`: the last outcome the pending action's node reported for this group."""
    stale = stale_nodes(samples, view, now)
    members = members_of(name, group, samples, stale, record)
    if lock is not None and lock.state == "pending":
        return _follow_pending(name, group, lock, members, now, ended)
    waiting = [m for m in members if m.node_stale]
    if waiting:
        nodes = sorted({m.node for m in waiting if m.node is not None})
        vmids = ", ".join(str(m.vmid) for m in waiting)
        return GroupDecision(name, note=f"waiting: stale samples from {', '.join(nodes)} (members "
                             f"{vmids}); the group is not resized on old data")  # fmt: skip
    running = [m for m in members if m.running]
    ready = [m for m in running if m.ready(group.ready_after_s)]
    if not ready:
        return GroupDecision(name, note=f"no member past the readiness gate ({group.ready_after_s:.0f} s); "
                             f"{len(running)} running")  # fmt: skip
    cpu = sum(m.reading.cpu_pct or 0.0 for m in ready if m.reading) / len(ready)
    memory = sum(m.reading.memory_pct or 0.0 for m in ready if m.reading) / len(ready)
    facts = _Facts(name, group, members, running, ready, cpu, memory, lock, view, now, samples)
    if cpu > group.horiz_cpu_upper_threshold or memory > group.horiz_memory_upper_threshold:
        return facts.scale_out()
    if cpu < group.horiz_cpu_lower_threshold and memory < group.horiz_memory_lower_threshold:
        return facts.scale_in()
    return GroupDecision(name, note=f"within thresholds: {facts.averages()}")


def _follow_pending(
    name: str, group: HorizontalGroup, lock: ActionLock, members: Sequence[Member], now: datetime,
    ended: ActionOutcome | None,
) -> GroupDecision:  # fmt: skip
    """The action in flight is done when its outcome shows, when its actuator reports that
    it ended without applying it, or when it has expired."""
    outcome = ""
    if ended is not None and ended.ends_pending(lock):
        outcome = f"{ended.outcome} by the actuator of {ended.node}: {ended.detail}"
    elif lock.action == "scale-out":
        new = [m for m in members if m.kind == "clone" and m.vmid not in lock.members_before]
        done = [m for m in new if m.ready(group.ready_after_s)]
        if done:
            outcome = f"clone {done[-1].vmid} running past the readiness gate"
    else:
        victim = next((m for m in members if m.vmid == lock.vmid), None)
        if victim is None or (not victim.node_stale and not victim.running):
            outcome = f"member {lock.vmid} stopped or gone"
    if not outcome and now >= lock.expires_at:
        held = (lock.expires_at - lock.taken_at).total_seconds()
        outcome = f"expired after {held:.0f} s without its outcome in samples"
    if not outcome:
        waiting = f"waiting for {lock.action} of {lock.vmid} (intent {lock.intent_id[:8]})"
        return GroupDecision(name, note=waiting)
    released = lock.model_copy(update={"state": "done", "done_at": now, "outcome": outcome[:200]})
    return GroupDecision(name, lock=released, note=f"{lock.action} done: {outcome}")


@dataclass(frozen=True)
class _Facts:
    name: str
    group: HorizontalGroup
    members: Sequence[Member]
    running: Sequence[Member]
    ready: Sequence[Member]
    cpu: float
    memory: float
    last: ActionLock | None
    view: PolicyView
    now: datetime
    samples: Mapping[str, NodeSample]

    def averages(self) -> str:
        return (f"average cpu {self.cpu:.1f}%, memory {self.memory:.1f}% over {len(self.ready)} ready "
                f"of {len(self.running)} running members")  # fmt: skip

    def scale_out(self) -> GroupDecision:
        group = self.group
        if len(self.running) >= group.max_instances:
            return self._note(f"at max_instances {group.max_instances}: {self.averages()}")
        if (blocked := self._grace("scale-out", group.scale_out_grace_period)) is not None:
            return blocked
        source = self.members[0]
        if source.node is None or source.reading is None:
            return self._note(f"source {source.vmid} is in no node's latest sample; cannot clone it")
        hot = []
        if self.cpu > group.horiz_cpu_upper_threshold:
            hot.append(f"cpu {self.cpu:.1f}% > {group.horiz_cpu_upper_threshold:g}%")
        if self.memory > group.horiz_memory_upper_threshold:
            hot.append(f"memory {self.memory:.1f}% > {group.horiz_memory_upper_threshold:g}%")
        target = self._placement(source.node)
        where = f" on {target}" if target else ""
        summary = (f"group {self.name}: average {' and '.join(hot)} over {len(self.ready)} ready members; "
                   f"clone {source.vmid}{where} ({len(self.running)} → {len(self.running) + 1} of max "
                   f"{group.max_instances})")  # fmt: skip
        return self._act("scale-out", source, summary, target)

    def scale_in(self) -> GroupDecision:
        group = self.group
        if len(self.running) <= group.min_size:
            return self._note(f"at min_instances {group.min_size}: {self.averages()}")
        if (blocked := self._grace("scale-in", group.scale_in_grace_period)) is not None:
            return blocked
        clones = [m for m in self.running if m.kind == "clone"]
        if not clones:
            return self._note("no running clone to remove (the source and listed members are never removed)")
        victim = clones[-1]  # the newest clone the group made
        verb = "destroy" if group.scale_in_policy == "destroy" else "stop"
        summary = (f"group {self.name}: average cpu {self.cpu:.1f}% < {group.horiz_cpu_lower_threshold:g}% "
                   f"and memory {self.memory:.1f}% < {group.horiz_memory_lower_threshold:g}%; {verb} the "
                   f"newest clone {victim.vmid} ({len(self.running)} → {len(self.running) - 1}, min "
                   f"{group.min_size})")  # fmt: skip
        return self._act("scale-in", victim, summary, None)

    def _note(self, text: str) -> GroupDecision:
        return GroupDecision(self.name, note=text)

    def _grace(self, action: GroupAction, grace_s: float) -> GroupDecision | None:
        # One timestamp for both grace periods, as in the original: the last action of either kind.
        if self.last is None:
            return None
        since = self._since(self.last)
        if since >= grace_s:
            return None
        return self._note(f"{action} wanted but the grace period holds: last action {since:.0f} s ago, "
                          f"grace {grace_s:.0f} s ({self.averages()})")  # fmt: skip

    def _since(self, lock: ActionLock) -> float:
        return (self.now - lock.taken_at).total_seconds()

    def _placement(self, source_node: str) -> str | None:
        """`least-loaded`: the fresh node with the most free cores and memory (as shares of
        its size) for what runs there; None means the source's own node."""
        if self.group.placement != "least-loaded":
            return None
        stale = stale_nodes(self.samples, self.view, self.now)
        best, best_score = source_node, self._free(source_node)
        for node in sorted(set(self.samples) - stale - {source_node}):
            score = self._free(node)
            if score > best_score + 1e-9:
                best, best_score = node, score
        return None if best == source_node else best

    def _free(self, node: str) -> float:
        sample = self.samples.get(node)
        if sample is None:
            return float("-inf")
        size = self.view.host_sizes.get(node)
        cores = size.cores if size is not None else sample.host.cores
        memory = size.memory_mb if size is not None else sample.host.memory_mb
        host = sample.host
        return (1 - host.allocated_cores_running / cores) + (1 - host.allocated_memory_mb_running / memory)

    def _act(self, action: GroupAction, member: Member, summary: str, target: str | None) -> GroupDecision:
        assert member.node is not None  # callers pass a member seen in a sample
        blocked = self.view.pauses.blocked(member.node, member.vmid, "none", self.now)
        if blocked.up if action == "scale-out" else blocked.down:
            return self._note(f"{action} wanted but paused for {member.node}/{member.vmid}: {summary}")
        sample = self.samples[member.node]
        # The group's own key, or the file's DEFAULT.dry_run / the operator's switch.
        dry_run = self.group.dry_run or self.view.dry_run
        intent = GroupIntent.build(
            group=self.name, action=action, node=member.node, vmid=member.vmid,
            reason=self._reason(action, summary), source_id=sample.sample_id, created_at=self.now,
            ttl_s=self.view.intent_ttl_s, target_node=target,
            policy_version=self.view.version, dry_run=dry_run,
        )  # fmt: skip
        grace = _grace_of(self.group, action)
        # A dry run changes nothing the samples could show: its lock lasts a grace period.
        hold_s = max(grace, self.view.intent_ttl_s) if dry_run else self.group.action_timeout_s
        lock = ActionLock(
            group=self.name, action=action, intent_id=intent.intent_id, node=member.node, vmid=member.vmid,
            members_before=tuple(m.vmid for m in self.members if m.kind == "clone" or m.running),
            taken_at=self.now, expires_at=self.now + timedelta(seconds=hold_s),
        )  # fmt: skip
        return GroupDecision(self.name, intent=intent, lock=lock, note=summary)

    def _reason(self, action: GroupAction, summary: str) -> DecisionReason:
        group = self.group
        state: dict[str, Scalar] = {
            "running": len(self.running), "ready": len(self.ready),
            "members": ",".join(str(m.vmid) for m in self.running)[:500],
            "last_action_s_ago": None if self.last is None else round(self._since(self.last), 1),
        }  # fmt: skip
        return DecisionReason(
            rule=f"group-{action}",
            summary=summary,
            inputs={"avg_cpu_pct": round(self.cpu, 2), "avg_memory_pct": round(self.memory, 2)},
            thresholds={
                "cpu_upper": group.horiz_cpu_upper_threshold, "cpu_lower": group.horiz_cpu_lower_threshold,
                "memory_upper": group.horiz_memory_upper_threshold,
                "memory_lower": group.horiz_memory_lower_threshold,
                "min_instances": group.min_size, "max_instances": group.max_instances,
                "ready_after_s": group.ready_after_s,
                "grace_s": _grace_of(group, action),
            },
            state=state,
        )  # fmt: skip


def _grace_of(group: HorizontalGroup, action: GroupAction) -> float:
    return group.scale_out_grace_period if action == "scale-out" else group.scale_in_grace_period
