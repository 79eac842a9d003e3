"""The horizontal groups' pure core: the latest samples of every node, the group's records
and the time in; at most one group intent and the group's action record out.

A sibling of `policy/` under the same rules (no I/O, no clock; tests/unit/
test_decider_purity.py checks both). docs/horizontal.md describes the behaviour.
"""

from services.decider.group_policy.decide import GroupDecision, decide_group
from services.decider.group_policy.members import Member, members_of

__all__ = ["GroupDecision", "Member", "decide_group", "members_of"]
