"""`lxc-autoscale status`'s lines below the table: dry-run, wide pauses, groups."""

from __future__ import annotations

from typing import Any

from cli.status import group_line, summary


def pause(scope: str, node: str | None, active: bool = True, **entry: Any) -> dict[str, Any]:
    return {"key": "k", "scope": scope, "node": node, "vmid": None, "mode": "all", "until": None,
            "reason": "", "active": active, **entry}  # fmt: skip


def test_dry_run_and_the_pauses_wider_than_a_container_in_force_for_the_node_asked() -> None:
    dry_run = {"enabled": True, "source": "operator", "switch": {"reason": "watch\x1b[2J first"}}
    pauses = [
        pause("global", None, mode="scale-down", until="2030-01-01T00:00:00Z"),
        pause("node", "pve1", reason="firmware"),
        pause("node", "pve2"),
        pause("node", "pve1", active=False),
        {**pause("container", "pve1"), "vmid": 101},
    ]
    assert summary(dry_run, pauses, "pve1").splitlines() == [
        "Dry-run:     on (operator: watch?[2J first)",  # control characters from the bus are neutralised
        "Paused:      everything (scale-down) until 2030-01-01T00:00:00Z",
        "Paused:      node pve1 (all): firmware",
    ]
    assert len(summary(dry_run, pauses, None).splitlines()) == 4  # pve2's too


def test_a_group_line_names_its_bounds_usage_and_the_deciders_decision() -> None:
    group = {
        "group": "web", "min_instances": 1, "max_instances": 3, "running": 2, "members": [{}, {}, {}],
        "cpu_pct": 85.0, "memory_pct": None, "decision": {"reason": "group web: clone 101\x07"},
    }  # fmt: skip
    assert group_line(group) == (
        "Group:       web: 2/3 running (min 1, max 3), cpu 85%, memory ? (missing): group web: clone 101?"
    )
