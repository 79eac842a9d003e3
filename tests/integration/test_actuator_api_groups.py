"""Group actions with `ACTUATOR.executor: api`: a real nats-server, the actuator, and the
Proxmox API double over the simulated node; pct is never run, every step is an API call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, running_actuator, sim_node
from group_harness import SOURCE, TAG, clones, group_config, group_intent, membership, run_group_intent, view
from pve_api import ACTUATOR_PRIVILEGES, PveApi, serve_api

from shared import subjects

pytestmark = pytest.mark.integration
CT = "/api2/json/nodes/pve1/lxc"


@pytest.fixture
def pve(tmp_path: Path) -> Iterator[PveApi]:
    with serve_api(
        sim_node(tmp_path / "node", (SOURCE, 2, 1024)), tmp_path / "tls", task_seconds=0.05
    ) as api:
        yield api


def changes(pve: PveApi) -> list[tuple[str, str]]:
    """What the actuator asked the node to change or run, in order (reads left out)."""
    return [(m, p) for m, p, status in pve.calls() if m != "GET" and status == 200]


async def test_a_scale_out_and_a_scale_in_run_through_the_api_alone(nc: Any, pve: PveApi) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, pve.sim, executor=pve.group_executor(), config=group_config()):
        out = await run_group_intent(js, reader, group_intent(source_id="s1"))
        made = changes(pve)
        gone = await run_group_intent(js, reader, group_intent("scale-in", out.vmid, source_id="s2"))
    assert (out.outcome, out.detail, out.vmid) == ("applied", "scaled-out", 200), out
    assert out.group is not None and out.group.steps == (
        "reserve-id", "reserve-ip", "snapshot", "clone", "tags", "net0", "delete-snapshot", "start",
        "record-membership",
    )  # fmt: skip
    clone = view(pve.sim, 200)
    assert clone is not None and TAG in clone.tags and clone.lock is None
    assert clone.nets["net0"]["ip"] == "10.0.0.21/24" and clone.nets["net0"]["gw"] == "10.0.0.1"
    source = view(pve.sim, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None
    snap = f"autoscale-{out.intent_id[:16]}"
    assert made == [
        ("POST", f"{CT}/{SOURCE}/snapshot"), ("POST", f"{CT}/{SOURCE}/clone"), ("PUT", f"{CT}/200/config"),
        ("PUT", f"{CT}/200/config"), ("DELETE", f"{CT}/{SOURCE}/snapshot/{snap}"),
        ("POST", f"{CT}/200/status/start"),
    ]  # fmt: skip
    assert (gone.outcome, gone.detail) == ("applied", "scaled-in"), gone
    assert not pve.sim.is_running(200) and view(pve.sim, 200) is not None  # stopped, kept
    assert await membership(js) == [] and pve.sim.pct_calls() == []


async def test_destroy_through_the_api_only_with_allow_destroy_and_ids_are_never_reused(
    nc: Any, pve: PveApi
) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    config = group_config(scale_in_policy="destroy", allow_destroy=True)
    async with running_actuator(nc, pve.sim, executor=pve.group_executor(), config=config):
        out = await run_group_intent(js, reader, group_intent(source_id="s1"))
        gone = await run_group_intent(js, reader, group_intent("scale-in", out.vmid, source_id="s2"))
        again = await run_group_intent(js, reader, group_intent(source_id="s3"))
    assert [e.detail for e in (out, gone, again)] == ["scaled-out", "scaled-in", "scaled-out"]
    assert gone.group is not None and gone.group.steps == (
        "stop",
        "destroy",
        "release-ip",
        "record-membership",
    )
    assert view(pve.sim, 200) is None and again.vmid == 201  # the destroyed id stays reserved
    assert ("DELETE", f"{CT}/200") in changes(pve)
    assert [c for c in pve.calls("DELETE") if c[1] == f"{CT}/200"] == [("DELETE", f"{CT}/200", 200)]
    assert clones(pve.sim) == [201] and await membership(js) == [201]


async def test_a_token_without_the_group_privileges_fails_clearly_and_leaves_nothing(
    nc: Any, pve: PveApi
) -> None:
    """The resize-only role of docs/proxmox-api.md: the snapshot is refused by name."""
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(
        nc, pve.sim, executor=pve.group_executor(ACTUATOR_PRIVILEGES), config=group_config()
    ):
        event = await run_group_intent(js, reader, group_intent())
    assert (event.outcome, event.detail) == ("failed", "permission-denied"), event
    assert "403 Permission check failed (/vms/101, VM.Snapshot)" in event.message
    assert clones(pve.sim) == []
    source = view(pve.sim, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None
    groups = await js.key_value(subjects.GROUPS_BUCKET)
    assert (await groups.get(subjects.group_id_key(200))).value  # the id stays reserved
    assert await membership(js) == [] and pve.sim.pct_calls() == []


async def test_a_token_that_may_snapshot_but_not_clone_deletes_its_snapshot_again(
    nc: Any, pve: PveApi
) -> None:
    js = nc.jetstream()
    reader = await EventReader.open(js)
    privileges = (*ACTUATOR_PRIVILEGES, "VM.Snapshot", "VM.PowerMgmt")
    async with running_actuator(nc, pve.sim, executor=pve.group_executor(privileges), config=group_config()):
        event = await run_group_intent(js, reader, group_intent())
    assert (event.outcome, event.detail) == ("failed", "permission-denied"), event
    assert "403 Permission check failed (/vms/101, VM.Clone)" in event.message
    assert event.group is not None and event.group.steps[:3] == ("reserve-id", "reserve-ip", "snapshot")
    source = view(pve.sim, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None
    assert clones(pve.sim) == []
