"""Cross-node placement (`placement: least-loaded`) end to end on a simulated two-node
cluster with shared storage: pve1's actuator clones its source onto pve2 (`pct clone
--target pve2`) and finishes the clone there through `pvesh`, which the simulated pvesh
proxies to pve2 as Proxmox's does; pve2's actuator later scales that clone in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import (
    EventReader,
    actuator_process,
    eventually,
    publish_intent,
    running_actuator,
    setup_node,
)
from group_harness import (
    GROUP,
    SOURCE,
    TAG,
    group_config,
    group_config_file,
    group_intent,
    pct_calls,
    run_group_intent,
    view,
)

from shared import subjects
from shared.config import load_config
from shared.groups import MembershipRecord
from simnode import settings
from simnode.tree import ContainerSpec, NodeSpec, SimCluster, SimNode, build_cluster

pytestmark = pytest.mark.integration
# local-lvm is the source's own (node-local) storage; tank is an NFS share every node sees
STORAGE_CFG = (
    "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n"
    "nfs: tank\n\tpath /mnt/pve/tank\n\tserver 10.0.0.9\n\texport /srv/tank\n\tcontent rootdir\n"
)
STEPS = (
    "reserve-id", "reserve-ip", "snapshot", "clone", "tags", "net0", "delete-snapshot", "start",
    "record-membership",
)  # fmt: skip


def two_nodes(root: Path) -> SimCluster:
    return build_cluster(
        root,
        [
            NodeSpec("pve1", 16, 32768, (ContainerSpec(SOURCE, "web", 2, 1024, tags="web"),)),
            NodeSpec("pve2", 16, 32768, (ContainerSpec(150, "db", 2, 2048),)),
        ],
        storage_cfg=STORAGE_CFG,
    )


def pvesh_calls(sim: SimNode) -> list[str]:
    return [" ".join(call) for call in sim.pvesh_calls()]


async def members(js: Any) -> dict[int, str]:
    entry = await (await js.key_value(subjects.GROUPS_BUCKET)).get(subjects.group_members_key(GROUP))
    return {m.vmid: m.node for m in MembershipRecord.from_bytes(entry.value).members}


def assert_one_started_clone_on_pve2(cluster: SimCluster) -> int:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    assert set(cluster.vmids()) - {SOURCE, 150} == {200}, cluster.vmids()
    clone = view(pve2, 200)
    assert cluster.where(200) == "pve2" and clone is not None and clone.lock is None
    assert TAG in clone.tags and "web" in clone.tags and pve2.is_running(200) and not pve1.is_running(200)
    assert clone.nets["net0"]["ip"] == "10.0.0.21/24" and clone.nets["net0"]["gw"] == "10.0.0.1"
    source = view(pve1, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None
    [clone_call] = pct_calls(pve1, "clone")
    assert clone_call[-4:] == ["--storage", "tank", "--target", "pve2"]
    return 200


async def test_a_least_loaded_scale_out_lands_on_the_other_node_and_that_nodes_actuator_scales_it_in(
    nc: Any, tmp_path: Path
) -> None:
    cluster = two_nodes(tmp_path / "cluster")
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    js, config = nc.jetstream(), group_config(target_storage="tank", placement="least-loaded")
    async with running_actuator(nc, pve1, config=config):
        out = await run_group_intent(js, await EventReader.open(js), group_intent(target_node="pve2"))
    assert (out.outcome, out.detail, out.node, out.vmid) == ("applied", "scaled-out", "pve1", 200), out
    assert out.group is not None and out.group.target_node == "pve2" and out.group.steps == STEPS
    assert "on pve2" in (out.message or "")
    assert_one_started_clone_on_pve2(cluster)
    assert await members(js) == {200: "pve2"}  # with its node: the decider sends its scale-in there
    # pve1 ran the snapshot, the clone and the snapshot's deletion; everything on the clone
    # went through pvesh, which ran it on pve2 (its own pvesh, `--noproxy`)
    assert [call[0] for call in pve1.pct_calls()] == ["snapshot", "clone", "delsnapshot"]
    remote = [" ".join(call.split()[:3]) for call in pvesh_calls(pve1) if "/nodes/" in call]
    assert [call for call in remote if not call.startswith("get ")] == [
        "set /nodes/pve2/lxc/200/config --tags", "set /nodes/pve2/lxc/200/config --net0",
        "create /nodes/pve2/lxc/200/status/start",
    ]  # fmt: skip
    assert {call for call in remote if call.startswith("get ")} == {
        "get /nodes/pve2/lxc/200/status/current --output-format"
    }
    assert [call.split()[:3] for call in pvesh_calls(pve2)] == [["--noproxy", *c.split()[:2]] for c in remote]

    scale_in = group_intent("scale-in", 200, source_id="pve2:boot:2", node="pve2")
    async with running_actuator(nc, pve2, config=config, node="pve2"):
        removed = await run_group_intent(js, await EventReader.open(js, node="pve2"), scale_in)
    assert (removed.outcome, removed.detail, removed.node, removed.vmid) == (
        "applied",
        "scaled-in",
        "pve2",
        200,
    )
    assert not pve2.is_running(200) and view(pve2, 200) is not None  # stopped, kept
    assert pct_calls(pve2, "stop") == [["stop", "200"]] and await members(js) == {}


async def test_a_clone_onto_another_node_from_local_storage_fails_clearly_and_leaves_nothing(
    nc: Any, tmp_path: Path
) -> None:
    """Proxmox refuses `--target` for a container on node-local storage; nothing is left."""
    cluster = two_nodes(tmp_path / "cluster")
    pve1, js = cluster.node("pve1"), nc.jetstream()
    async with running_actuator(nc, pve1, config=group_config(placement="least-loaded")):
        event = await run_group_intent(js, await EventReader.open(js), group_intent(target_node="pve2"))
    assert (event.outcome, event.detail) == ("failed", "command-failed"), event
    assert "can't clone CT to node 'pve2' (CT uses local storage)" in (event.message or "")
    assert event.group is not None and event.group.steps == ("reserve-id", "reserve-ip", "snapshot")
    assert cluster.vmids() == {SOURCE: "pve1", 150: "pve2"}  # Proxmox removed the new config again
    source = view(pve1, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None
    ips = await js.key_value(subjects.GROUPS_BUCKET)
    assert [key async for key in _keys(ips) if key.startswith("ips.")] == []  # the address went back


async def _keys(kv: Any) -> AsyncIterator[str]:
    try:
        for key in await kv.keys():
            yield key
    except Exception as exc:  # nats-py: NoKeysError on an empty bucket
        if "NoKeys" not in type(exc).__name__:
            raise


@pytest.mark.parametrize("kill", ["group.after-clone", "while-copying"])
async def test_a_killed_cross_node_scale_out_resumes_to_one_started_clone_on_the_target(
    broker: Any, nc: Any, tmp_path: Path, kill: str, processes: list[Any]
) -> None:
    """SIGKILL after `pct clone --target` returned (the clone is on pve2, untagged), or while
    it still copies (its config on pve1, `lock: create`): the restarted actuator finds the
    clone wherever it is now and finishes it on pve2; one clone, one event."""
    cluster = two_nodes(tmp_path / "cluster")
    pve1, js = cluster.node("pve1"), nc.jetstream()
    path = tmp_path / "autoscale.yaml"
    path.write_text(group_config_file(pve1, "  target_storage: tank\n  placement: least-loaded\n"))
    await setup_node(js, load_config(path, env={}).actuator)
    intent = group_intent(target_node="pve2")
    await publish_intent(js, intent)  # type: ignore[arg-type]
    if kill == "while-copying":
        settings.configure(pve1.root, clone_s=3.0)
        processes.append(actuator_process(broker, pve1, path, None))
        await eventually(lambda: _copying(pve1), timeout_s=30)  # the new config, on pve1 still
        processes[0].kill()
    else:
        processes.append(actuator_process(broker, pve1, path, kill))
    assert await asyncio.to_thread(processes[0].wait, 60) == -9
    processes.append(actuator_process(broker, pve1, path, None))
    reader = await EventReader.open(js)
    [event] = await reader.take(1, timeout_s=60)
    assert await reader.nothing_more(wait_s=1.0) == []
    assert (event.outcome, event.detail, event.intent_id) == ("applied", "scaled-out", intent.intent_id), (
        event
    )
    assert_one_started_clone_on_pve2(cluster)
    assert await members(js) == {200: "pve2"}


async def _copying(sim: SimNode) -> bool:
    seen = view(sim, 200)
    return seen is not None and seen.lock == "create"
