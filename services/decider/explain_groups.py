"""What the deciders see and would do for each horizontal group right now, for the
console: the members as `group_policy.members_of` finds them and the note and intent of
the same pure `decide_group` the replicas run, on the latest samples, the groups
bucket's records and the operator's pauses and dry-run switch. Pure, like `explain`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TypeVar

from services.decider.explain import view_with_operator
from services.decider.group_policy import Member, decide_group, members_of
from services.decider.group_policy.decide import stale_nodes
from services.decider.policy import PolicyView
from shared.config import AutoscaleConfig
from shared.explanation import ExplainGroups, GroupExplanation, GroupMemberExplanation
from shared.groups import ActionLock, ActionOutcome, MembershipRecord
from shared.models import NodeSample

R = TypeVar("R", MembershipRecord, ActionLock, ActionOutcome)


def make_group_explainer(config: AutoscaleConfig) -> ExplainGroups:
    view = PolicyView(config)

    def explain_groups(
        samples: Mapping[str, NodeSample],
        records: Mapping[str, bytes],
        policy: Mapping[str, bytes],
        now: datetime,
    ) -> dict[str, GroupExplanation]:
        return explain_all_groups(view_with_operator(view, policy), samples, records, now)

    return explain_groups


def explain_all_groups(
    view: PolicyView, samples: Mapping[str, NodeSample], records: Mapping[str, bytes], now: datetime
) -> dict[str, GroupExplanation]:
    stale = stale_nodes(samples, view, now)
    result = {}
    for name, group in view.config.groups.items():
        record = _read(MembershipRecord, records.get(f"members.{name}"))
        lock = _read(ActionLock, records.get(f"action.{name}"))
        ended = _read(ActionOutcome, records.get(f"outcome.{lock.node}.{name}")) if lock else None
        decision = decide_group(name, group, samples, record, lock, view, now, ended)
        members = members_of(name, group, samples, stale, record)
        result[name] = GroupExplanation(
            group=name,
            decision=decision.note,
            intent=decision.intent,
            members=tuple(_member(m, group.ready_after_s) for m in members),
        )
    return result


def _member(member: Member, ready_after_s: float) -> GroupMemberExplanation:
    return GroupMemberExplanation(
        vmid=member.vmid, kind=member.kind, node=member.node, running=member.running,
        ready=member.ready(ready_after_s), node_stale=member.node_stale,
    )  # fmt: skip


def _read(model: type[R], raw: bytes | None) -> R | None:
    if not raw:
        return None
    try:
        return model.from_bytes(raw)
    except ValueError:
        return None  # unreadable: the deciders treat it as absent too
