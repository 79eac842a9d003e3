"""Group actions end to end: a real nats-server, the actuator, the simulated node's pct."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, publish_intent, running_actuator, sim_node
from group_harness import (
    SOURCE,
    TAG,
    clones,
    group_config,
    group_intent,
    membership,
    pct_calls,
    run_group_intent,
    view,
)

from shared import subjects
from shared.config import parse_config
from shared.models import GroupIntent
from simnode.tree import SimNode

pytestmark = pytest.mark.integration


async def started(nc: Any, tmp_path: Path, *others: tuple[int, int, int]) -> tuple[SimNode, Any, EventReader]:
    """A node with the group's source (and `others`), JetStream, an events reader."""
    sim = sim_node(tmp_path / "node", (SOURCE, 2, 1024), *others)
    js = nc.jetstream()
    return sim, js, await EventReader.open(js)


async def test_a_scale_out_ends_with_one_tagged_started_clone_on_its_own_address(
    nc: Any, tmp_path: Path
) -> None:
    sim, js, reader = await started(nc, tmp_path)
    async with running_actuator(nc, sim, config=group_config()):
        event = await run_group_intent(js, reader, group_intent())
    assert (event.outcome, event.detail) == ("applied", "scaled-out"), event
    assert event.group is not None and event.group.new_vmid == event.vmid == 200
    assert event.group.steps == (
        "reserve-id", "reserve-ip", "snapshot", "clone", "tags", "net0", "delete-snapshot", "start",
        "record-membership",
    )  # fmt: skip
    assert event.group.ip == "10.0.0.21/24"
    clone = view(sim, 200)
    assert clone is not None and TAG in clone.tags and clone.lock is None and sim.is_running(200)
    assert clone.nets["net0"]["ip"] == "10.0.0.21/24" and clone.nets["net0"]["gw"] == "10.0.0.1"
    source = view(sim, SOURCE)
    assert source is not None and source.snapshots == frozenset()  # the snapshot is gone again
    assert await membership(js) == [200]
    ids = await js.key_value(subjects.GROUPS_BUCKET)
    assert (await ids.get(subjects.group_id_key(200))).value


async def test_ids_and_addresses_are_never_handed_out_twice_even_after_a_scale_in(
    nc: Any, tmp_path: Path
) -> None:
    """The original reused a stopped clone's id, so every later scale-out failed."""
    sim, js, reader = await started(nc, tmp_path)
    async with running_actuator(nc, sim, config=group_config()):
        first = await run_group_intent(js, reader, group_intent(source_id="s1"))
        second = await run_group_intent(js, reader, group_intent(source_id="s2"))
        removed = await run_group_intent(js, reader, group_intent("scale-in", second.vmid, source_id="s3"))
        third = await run_group_intent(js, reader, group_intent(source_id="s4"))
    details = [e.detail for e in (first, second, removed, third)]
    assert details == ["scaled-out", "scaled-out", "scaled-in", "scaled-out"]
    assert (first.vmid, second.vmid, third.vmid) == (200, 201, 202)  # 201 is stopped, not reused
    ips = [e.group.ip for e in (first, second, third) if e.group is not None]
    assert ips == ["10.0.0.21/24", "10.0.0.22/24", "10.0.0.23/24"]  # 201 keeps its address
    assert not sim.is_running(201) and view(sim, 201) is not None  # stopped, never destroyed
    assert pct_calls(sim, "destroy") == []
    assert await membership(js) == [200, 202]


async def test_destroy_happens_only_with_allow_destroy(nc: Any, tmp_path: Path) -> None:
    sim, js, reader = await started(nc, tmp_path)
    config = group_config(scale_in_policy="destroy", allow_destroy=True)
    async with running_actuator(nc, sim, config=config):
        out = await run_group_intent(js, reader, group_intent(source_id="s1"))
        gone = await run_group_intent(js, reader, group_intent("scale-in", out.vmid, source_id="s2"))
        again = await run_group_intent(js, reader, group_intent(source_id="s3"))
    assert (gone.outcome, gone.detail) == ("applied", "scaled-in") and gone.group is not None
    assert view(sim, out.vmid) is None and [c[1:] for c in pct_calls(sim, "destroy")] == [["200", "--purge"]]
    assert again.vmid == 201  # the destroyed id stays reserved
    assert again.group is not None and again.group.ip == "10.0.0.21/24"  # its address is free again
    assert gone.group.steps == ("stop", "destroy", "release-ip", "record-membership")


async def test_scale_in_refuses_the_source_and_a_dry_run_changes_nothing(nc: Any, tmp_path: Path) -> None:
    sim, js, reader = await started(nc, tmp_path, (150, 1, 512))
    async with running_actuator(nc, sim, config=group_config(lxc_containers=[150])):
        source = await run_group_intent(js, reader, group_intent("scale-in", SOURCE, source_id="s1"))
        by_hand = await run_group_intent(js, reader, group_intent("scale-in", 150, source_id="s2"))
        dry = await run_group_intent(js, reader, group_intent(source_id="s3", dry_run=True))
    assert (source.outcome, source.detail) == ("rejected", "not-a-clone")
    assert (by_hand.outcome, by_hand.detail) == ("rejected", "not-a-clone")
    assert (dry.outcome, dry.detail, dry.dry_run) == ("skipped", "dry-run", True)
    assert sim.pct_calls() == [] and clones(sim, 150) == []


async def test_an_exhausted_pool_fails_the_scale_out_without_leaving_a_snapshot(
    nc: Any, tmp_path: Path
) -> None:
    sim, js, reader = await started(nc, tmp_path)
    async with running_actuator(nc, sim, config=group_config(static_ip_range=["10.0.0.21"])):
        first = await run_group_intent(js, reader, group_intent(source_id="s1"))
        second = await run_group_intent(js, reader, group_intent(source_id="s2"))
    assert first.detail == "scaled-out"
    assert (second.outcome, second.detail) == ("failed", "pool-exhausted"), second
    assert clones(sim) == [200] and len(pct_calls(sim, "snapshot")) == 1
    source = view(sim, SOURCE)
    assert source is not None and source.snapshots == frozenset()


async def test_two_groups_scaling_out_at_once_never_get_the_same_id_or_address(
    nc: Any, tmp_path: Path
) -> None:
    """Both groups start at 200 (the id reservations decide); api's source holds web's .22
    (set by hand on its net0), so web may never hand .22 to a clone."""
    sim = sim_node(tmp_path / "node", (SOURCE, 2, 1024), (102, 2, 1024))
    conf = sim.conf_path(102)
    conf.write_text(conf.read_text().replace("ip=dhcp", "ip=10.0.0.22/24"))
    pools = {"web": ["10.0.0.21", "10.0.0.22"], "api": ["10.0.0.23"]}  # pools overlap: refused at load
    config = parse_config(
        {
            f"HORIZONTAL_SCALING_GROUP_{name}": {
                "base_snapshot_name": source, "starting_clone_id": 200, "clone_network_type": "static",
                "static_ip_range": pools[name],
            }
            for name, source in (("web", SOURCE), ("api", 102))
        },
        env={},
    )  # fmt: skip
    js = nc.jetstream()
    reader = await EventReader.open(js)
    web = group_intent(source_id="s1")
    api = GroupIntent.build(
        group="api", action="scale-out", node="pve1", vmid=102, reason=web.reason, source_id="s1",
        created_at=web.created_at, ttl_s=120,
    )  # fmt: skip
    async with running_actuator(nc, sim, config=config):
        await publish_intent(js, web)  # type: ignore[arg-type]
        await publish_intent(js, api)  # type: ignore[arg-type]
        events = await reader.take(2, timeout_s=30)
        again = await run_group_intent(js, reader, group_intent(source_id="s2"))
    assert [e.detail for e in events] == ["scaled-out", "scaled-out"], events
    assert sorted(e.vmid for e in events) == [200, 201] and clones(sim, 102) == [200, 201]
    by_group = {e.group.name: e.group.ip for e in events if e.group is not None}
    assert by_group == {"web": "10.0.0.21/24", "api": "10.0.0.23/24"}
    # web's second address is on api's source: web's pool is used up, not handed out twice
    assert (again.outcome, again.detail) == ("failed", "pool-exhausted")
