"""A `pct clone` that outlasts `clone_timeout_s` is interrupted so that Proxmox cleans up
after it: the actuator sends SIGTERM first (pct's task dies with "interrupted by signal",
unlocks the source and deletes the new container), SIGKILL only if it is still there
after the grace (docs/actuator.md, "Clone timeout")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, running_actuator, sim_node
from group_harness import SOURCE, group_config, group_intent, membership, pct_calls, run_group_intent, view

from shared import subjects
from simnode import settings

pytestmark = pytest.mark.integration


async def test_a_clone_killed_at_its_timeout_leaves_no_lock_no_container_and_no_snapshot(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (SOURCE, 2, 1024))
    settings.configure(sim.root, clone_s=30.0)  # the copy takes far longer than the group allows
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, config=group_config(clone_timeout_s=1), max_attempts=2):
        event = await run_group_intent(js, reader, group_intent())
    assert (event.outcome, event.detail) == ("failed", "timeout"), event
    assert event.group is not None and event.group.steps[:2] == ("reserve-id", "reserve-ip")
    assert len(pct_calls(sim, "clone")) == 2  # a timed-out clone is retried once (max_attempts 2)
    # Proxmox's clone undid itself each time: the source unlocked, no container 200 left
    source = view(sim, SOURCE)
    assert source is not None and source.lock is None
    assert source.snapshots == frozenset()  # and so the cleanup could delete the snapshot
    assert view(sim, 200) is None and sim.vmids() == [SOURCE]
    assert await membership(js) == []
    groups = await js.key_value(subjects.GROUPS_BUCKET)
    with pytest.raises(Exception, match="not found"):  # the address is free again, the id never
        await groups.get(subjects.group_ip_key("web", "10.0.0.21"))
    assert (await groups.get(subjects.group_id_key(200))).value
