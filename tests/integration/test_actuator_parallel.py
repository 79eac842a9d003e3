"""The actuator applies different containers side by side, and one change at a time per
container: a slow `pct set` on one container holds back neither the others nor is it
overtaken by the next change of the same container."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, sim_node

from simnode import faults, paths
from simnode.tree import SimNode

pytestmark = pytest.mark.integration

HANG_S = 1.5


def set_starts(sim: SimNode) -> list[tuple[datetime, int]]:
    """(start time, vmid) of every `pct set`, from simnode's call log."""
    starts = []
    for line in Path(paths.pct_log_path(str(sim.root))).read_text().splitlines():
        stamp, command, vmid, *_ = line.split(" ")
        if command == "set":
            starts.append((datetime.fromisoformat(stamp), int(vmid)))
    return starts


async def test_different_containers_are_resized_side_by_side(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024), (102, 2, 1024), (103, 2, 1024))
    for vmid in (101, 102, 103):
        faults.inject(sim.root, vmid, hang_times=1, hang_seconds=HANG_S)  # each set holds its CT lock
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, command_timeout_s=10.0):
        for vmid in (101, 102, 103):
            await publish_intent(js, intent(vmid))
        events = await reader.take(3)
    assert {e.vmid: e.outcome for e in events} == {101: "applied", 102: "applied", 103: "applied"}
    first_done = min(e.occurred_at for e in events)
    assert all(e.duration_ms >= HANG_S * 1000 for e in events)
    # Every container's `pct set` had started before the first of them finished.
    assert max(start for start, _ in set_starts(sim)) < first_done


async def test_one_container_gets_one_change_at_a_time(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, hang_times=1, hang_seconds=HANG_S)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    first = intent(101, expected=(2, 1024), target=(3, 1024), source_id="pve1:boot-a:1")
    second = intent(101, expected=(3, 1024), target=(4, 1024), source_id="pve1:boot-a:2")
    async with running_actuator(nc, sim, command_timeout_s=10.0):
        await publish_intent(js, first)
        await publish_intent(js, second)  # arrives while the first is still being applied
        events = await reader.take(2)
    assert [(e.intent_id, e.outcome) for e in events] == [
        (first.intent_id, "applied"),
        (second.intent_id, "applied"),  # judged on the size the first one left, not skipped as stale
    ]
    (_, first_set), (second_start, second_set) = set_starts(sim)
    assert first_set == second_set == 101
    assert second_start >= events[0].occurred_at  # the second `pct set` began after the first ended
    assert sim.read_conf(101)["cores"] == "4"
