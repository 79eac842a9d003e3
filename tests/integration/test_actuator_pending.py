"""Issue 11, actuator side: a failed hotplug as PVE 7 and PVE 8 report it (simnode knobs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, set_calls, sim_node

from simnode import faults, settings

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("read_config", ["file", "pct"])
async def test_pve7_a_change_left_pending_fails_as_pending_and_the_next_intent_sees_the_real_size(
    nc: Any, tmp_path: Path, read_config: str
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    settings.configure(sim.root, pve_version=7)
    faults.inject(sim.root, 101, hotplug_fail_option="memory")
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, read_config=read_config):
        await publish_intent(js, intent(target=(3, 2048), source_id="grow"))
        [pending] = await reader.take(1)
        # The main section has cores 3 (fast-plug) and memory 1024; 2048 waits in [pve:pending].
        await publish_intent(js, intent(expected=(3, 1024), target=(3, 1536), source_id="next"))
        [after] = await reader.take(1)
    assert pending.outcome == "failed"  # never applied
    if read_config == "file":  # the pending section is visible in the file only
        assert pending.detail == "pending" and "memory 2048 pending" in pending.message
        assert (pending.after.cores, pending.after.memory_mb) == (3, 1024)  # type: ignore[union-attr]
    else:
        assert pending.detail == "invalid-value"
    assert "Parameter verification failed" in pending.message
    assert (after.outcome, after.detail) == ("applied", "resized")
    assert len(set_calls(sim)) == 2


async def test_pve8_a_failed_hotplug_is_a_permanent_invalid_value_with_the_message_kept(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    settings.configure(sim.root, pve_version=8)
    faults.inject(sim.root, 101, hotplug_fail_option="memory", hotplug_fail_message="memory hotplug refused")
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(target=(3, 2048)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "invalid-value", 1)
    assert "400 Parameter verification failed" in event.message and "memory hotplug refused" in event.message
    assert sim.read_conf(101)["memory"] == "1024" and sim.read_conf(101)["cores"] == "2"
