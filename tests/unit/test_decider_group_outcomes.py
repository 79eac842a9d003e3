"""A decider believes a group outcome only under the key of the node it names: the
permissions guard keys (actuator-<node> may write only `outcome.<node>.*`), not contents."""

from __future__ import annotations

from datetime import UTC, datetime

from services.decider.groups import GroupCoordinator
from shared import subjects
from shared.groups import ActionOutcome

AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def outcome(node: str, group: str = "web") -> bytes:
    return ActionOutcome(
        group=group, node=node, intent_id="a" * 32, action="scale-out", outcome="failed",
        detail="command-failed", occurred_at=AT,
    ).to_bytes()  # fmt: skip


def test_an_outcome_counts_only_under_its_own_nodes_key_and_a_delete_forgets_it() -> None:
    coordinator = GroupCoordinator(None, lambda: None, lambda: AT, "r0")  # type: ignore[arg-type,return-value]
    coordinator._apply(subjects.group_outcome_key("pve1", "web"), 5, outcome("pve1"))
    assert coordinator.outcomes[("web", "pve1")].detail == "command-failed"
    # pve2's actuator wrote a record claiming to be pve1's: not believed, not stored
    coordinator._apply(subjects.group_outcome_key("pve2", "web"), 6, outcome("pve1"))
    coordinator._apply(subjects.group_outcome_key("pve2", "web"), 7, outcome("pve2", group="db"))
    coordinator._apply(subjects.group_outcome_key("pve2", "web"), 8, b"not json")
    assert set(coordinator.outcomes) == {("web", "pve1")}
    coordinator._apply(subjects.group_outcome_key("pve1", "web"), 9, None)
    assert coordinator.outcomes == {}
