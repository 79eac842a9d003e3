"""The group commands through the API executor against the Proxmox API double: each
pct/pvesh argument tuple becomes Proxmox's call, waits on its task, and reports like pct
(the same node state, locks, errors and privileges as the simulated pct and Proxmox)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pve_api import GROUP_PRIVILEGES, GROUP_TOKEN, PveApi, serve_api

from services.actuator import group_commands as gc
from services.actuator.executors.api import ApiExecutor
from services.actuator.retry import ResultKind, classify
from shared.proxmox_api import ProxmoxApi
from simnode import settings
from simnode.tree import ContainerSpec, NodeSpec, build_cluster, build_node

pytestmark = pytest.mark.integration
PCT, PVESH = "/usr/sbin/pct", "/usr/bin/pvesh"
SNAP = "autoscale-0123456789abcdef"
SHARED_STORAGE = (
    "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n"
)


@pytest.fixture
def pve(tmp_path: Path) -> Iterator[PveApi]:
    sim = build_node(
        tmp_path / "node", node_name="pve1", host_cores=16, host_memory_mb=32768,
        containers=[ContainerSpec(101, "web1", 2, 1024, tags="web"),
                    ContainerSpec(102, "held", 1, 512, running=False, lock="backup")],
    )  # fmt: skip
    with serve_api(sim, tmp_path / "tls", task_seconds=0.05) as api:
        yield api


def executor(
    pve: PveApi, privileges: tuple[str, ...] = GROUP_PRIVILEGES, name: str = GROUP_TOKEN
) -> ApiExecutor:
    return pve.executor(token_id=name, secret=pve.add_token(name, privileges))


async def run(ex: ApiExecutor, operation: gc.GroupOperation) -> tuple[int | None, str, str]:
    result = await ex.run(gc.group_argv(operation, PCT), 20)
    return result.exit_code, result.stdout, result.stderr


async def test_a_whole_scale_out_and_destroy_run_through_the_api_without_pct(pve: PveApi) -> None:
    ex = executor(pve)
    net0 = gc.net0("vmbr0", "10.0.0.21/24", "10.0.0.1")
    steps = [
        gc.snapshot(101, SNAP),
        gc.clone(101, 205, snapname=SNAP, hostname="web-205", full=True),
    ]
    for step in steps:
        assert (await run(ex, step))[0] == 0, step
    assert SNAP in pve.sim.conf_path(101).read_text()
    made = pve.sim.read_conf(205)
    assert made["hostname"] == "web-205" and "lock" not in made and "lock" not in pve.sim.read_conf(101)
    hwaddr = made["net0"].split("hwaddr=")[1].split(",")[0]
    for step in (
        gc.set_tags(205, ("web", "autoscale-group-web")),
        gc.set_net(205, gc.net0(net0.bridge, net0.ip, net0.gateway, hwaddr)),
        gc.delete_snapshot(101, SNAP),
    ):
        assert (await run(ex, step))[0] == 0, step
    made = pve.sim.read_conf(205)
    assert made["tags"] == "autoscale-group-web;web"  # Proxmox keeps tags sorted and unique
    assert made["net0"] == f"name=eth0,bridge=vmbr0,gw=10.0.0.1,hwaddr={hwaddr},ip=10.0.0.21/24,type=veth"
    assert SNAP not in pve.sim.conf_path(101).read_text()
    assert await run(ex, gc.status(205)) == (0, "status: stopped\n", "")
    assert (await run(ex, gc.start(205)))[0] == 0 and pve.sim.is_running(205)
    assert await run(ex, gc.status(205)) == (0, "status: running\n", "")
    code, _, error = await run(ex, gc.destroy(205, allow_destroy=True))
    assert (code, error) == (255, "500 unable to destroy CT 205 - container is running")
    assert (await run(ex, gc.stop(205)))[0] == 0
    assert (await run(ex, gc.destroy(205, allow_destroy=True)))[0] == 0
    assert not pve.sim.conf_path(205).exists()
    assert pve.sim.pct_calls() == []
    kinds = [path.split("/")[6].split(":")[5] for method, path, _ in pve.calls("GET") if "/tasks/" in path]
    assert {"vzsnapshot", "vzclone", "vzdelsnapshot", "vzstart", "vzstop", "vzdestroy"} <= set(kinds)
    assert ("DELETE", "/api2/json/nodes/pve1/lxc/205", 200) in pve.calls("DELETE")


async def test_a_clone_holds_both_locks_while_its_task_copies_and_the_executor_waits(pve: PveApi) -> None:
    ex = executor(pve)
    assert (await run(ex, gc.snapshot(101, SNAP)))[0] == 0
    settings.configure(pve.sim.root, clone_s=1.0)
    cloning = asyncio.create_task(run(ex, gc.clone(101, 205, snapname=SNAP, hostname="web-205")))
    while not pve.sim.conf_path(205).exists():
        await asyncio.sleep(0.02)
    assert pve.sim.read_conf(101)["lock"] == "disk" and pve.sim.read_conf(205)["lock"] == "create"
    second = await run(executor(pve, name="other@pve!t"), gc.clone(101, 206, snapname=SNAP, hostname="x"))
    assert second == (255, "", "500 CT is locked (disk)")  # before any task: the call's own error
    assert (await cloning)[0] == 0
    assert "lock" not in pve.sim.read_conf(101) and "lock" not in pve.sim.read_conf(205)
    assert not pve.sim.conf_path(206).exists()


async def test_errors_come_back_as_pcts_and_classify_alike(pve: PveApi) -> None:
    ex = executor(pve)
    taken = await run(ex, gc.clone(101, 102, snapname=SNAP, hostname="x"))
    assert taken == (255, "", "500 CT 102 already exists on node 'pve1'")
    assert "lock" not in pve.sim.read_conf(101)  # the source's disk lock was given back
    missing = await ex.run(gc.group_argv(gc.clone(101, 205, snapname="nosuch", hostname="x"), PCT), 20)
    assert missing.stderr == "500 snapshot 'nosuch' does not exist" and not pve.sim.conf_path(205).exists()
    locked = await ex.run(gc.group_argv(gc.snapshot(102, SNAP), PCT), 20)  # found locked inside the task
    assert (locked.exit_code, locked.stderr) == (255, "CT is locked (backup)")
    assert classify(locked).kind is ResultKind.TRANSIENT and classify(locked).code == "locked"
    gone = await ex.run(gc.group_argv(gc.delete_snapshot(101, SNAP), PCT), 20)
    assert gone.stderr == f"snapshot '{SNAP}' does not exist"
    unknown = await ex.run(gc.group_argv(gc.status(555), PCT), 20)
    assert classify(unknown).code == "unknown-container"


async def test_a_token_without_the_group_privileges_is_refused_by_name(pve: PveApi) -> None:
    resize_only = ("VM.Audit", "VM.Config.CPU", "VM.Config.Memory", "Sys.Audit")
    ex = executor(pve, resize_only, "resize@pve!only")
    refused = await ex.run(gc.group_argv(gc.snapshot(101, SNAP), PCT), 20)
    assert refused.stderr == "403 Permission check failed (/vms/101, VM.Snapshot)"
    assert classify(refused).code == "permission-denied" and classify(refused).kind is ResultKind.PERMANENT
    no_allocate = executor(pve, tuple(p for p in GROUP_PRIVILEGES if p != "VM.Allocate"), "noalloc@pve!t")
    cloned = await no_allocate.run(gc.group_argv(gc.clone(101, 205, snapname=SNAP, hostname="x"), PCT), 20)
    assert cloned.stderr == "403 Permission check failed"  # the `or` of /vms/{newid} and the pool
    no_space = executor(pve, tuple(p for p in GROUP_PRIVILEGES if p != "Datastore.AllocateSpace"), "ns@pve!t")
    assert (await run(no_space, gc.snapshot(101, SNAP)))[0] == 0
    denied = await no_space.run(gc.group_argv(gc.clone(101, 205, snapname=SNAP, hostname="x"), PCT), 20)
    assert denied.stderr == "403 Permission check failed (/storage/local-lvm, Datastore.AllocateSpace)"
    assert "lock" not in pve.sim.read_conf(101) and not pve.sim.conf_path(205).exists()  # cleaned up


async def test_nextid_through_pvesh_argv(pve: PveApi) -> None:
    ex = executor(pve)
    free = await ex.run((PVESH, "get", "/cluster/nextid", "--vmid", "205"), 5)
    assert (free.exit_code, free.stdout) == (0, "205\n")
    used = await ex.run((PVESH, "get", "/cluster/nextid", "--vmid", "101"), 5)
    assert used.exit_code == 255 and "vmid: VM 101 already exists" in used.stderr


async def test_the_double_answers_the_snapshot_list_and_status_as_proxmox(pve: PveApi) -> None:
    api = ProxmoxApi(pve.endpoint(GROUP_TOKEN, pve.add_token(GROUP_TOKEN, GROUP_PRIVILEGES)))
    assert (await run(executor(pve, name="snap@pve!t"), gc.snapshot(101, SNAP)))[0] == 0
    listed = api.request("GET", "/nodes/pve1/lxc/101/snapshot").data
    assert [e["name"] for e in listed] == [SNAP, "current"]
    assert listed[1]["parent"] == SNAP and listed[1]["running"] == 1 and listed[0]["snaptime"] > 0
    status = api.request("GET", "/nodes/pve1/lxc/101/status/current").data
    assert status["status"] == "running" and status["vmid"] == 101 and status["tags"] == "web"
    assert status["maxmem"] == 1024 * 1024 * 1024
    reserved = api.request("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "vzdump"})
    assert reserved.error_text() == "500 unable to use snapshot name 'vzdump' (reserved name)"
    extra = api.request("DELETE", "/nodes/pve1/lxc/101", {"purge": "1", "keep": "1"})
    assert extra.error_text() == "400 Parameter verification failed.\nkeep: property is not defined in schema"
    assert pve.sim.is_running(101)


async def test_the_contracts_pvesh_calls_run_on_the_node_in_the_path(tmp_path: Path) -> None:
    cluster = build_cluster(
        tmp_path / "cluster",
        [NodeSpec("pve1", 8, 16384, (ContainerSpec(101, "web1", 2, 1024),)),
         NodeSpec("pve2", 8, 16384, (ContainerSpec(205, "web-205", 1, 512, running=False),))],
        storage_cfg=SHARED_STORAGE,
    )  # fmt: skip
    with serve_api(cluster.node("pve1"), tmp_path / "tls", task_seconds=0.05) as pve:
        ex = executor(pve)
        ct = "/nodes/pve2/lxc/205"
        assert (await ex.run((PVESH, "set", f"{ct}/config", "--tags", "autoscale-group-web"), 10)).ok
        assert (await ex.run((PVESH, "create", f"{ct}/status/start"), 10)).ok
        status = await ex.run((PVESH, "get", f"{ct}/status/current", "--output-format", "json"), 10)
        local = await ex.run(gc.group_argv(gc.status(205), PCT), 10)  # pct on pve1 does not see it
    assert json.loads(status.stdout)["status"] == "running" and json.loads(status.stdout)["name"] == "web-205"
    assert (
        cluster.node("pve2").is_running(205)
        and cluster.node("pve2").read_conf(205)["tags"] == "autoscale-group-web"
    )
    assert classify(local).code == "unknown-container"
    assert any("/tasks/UPID:pve2:" in path for _, path, _ in pve.calls("GET"))


async def test_a_clone_past_its_time_limit_is_stopped_and_cleans_up_after_itself(pve: PveApi) -> None:
    """As a timed-out pct is killed: the task gets SIGTERM (`DELETE …/tasks/{upid}`), so no
    clone appears after the actuator gave up on it."""
    ex = executor(pve)
    assert (await run(ex, gc.snapshot(101, SNAP)))[0] == 0
    settings.configure(pve.sim.root, clone_s=5.0)
    result = await ex.run(gc.group_argv(gc.clone(101, 205, snapname=SNAP, hostname="web-205"), PCT), 1.0)
    assert result.timed_out and classify(result).code == "timeout"
    [(upid, status)] = [(p.split("/")[6], s) for m, p, s in pve.calls("DELETE") if "/tasks/" in p]
    assert status == 200 and ":vzclone:101:" in upid
    assert "lock" not in pve.sim.read_conf(101) and not pve.sim.conf_path(205).exists()
    api = ProxmoxApi(pve.endpoint(GROUP_TOKEN, pve.add_token(GROUP_TOKEN, GROUP_PRIVILEGES)))
    ended = api.request("GET", f"/nodes/pve1/tasks/{upid}/status").data
    assert (ended["status"], ended["exitstatus"]) == ("stopped", "clone failed: interrupted by signal")
    other = ProxmoxApi(pve.endpoint("peek@pve!t", pve.add_token("peek@pve!t", ("Sys.Audit",))))
    refused = other.request("DELETE", f"/nodes/pve1/tasks/{upid}")
    assert refused.error_text() == "403 Permission check failed (/nodes/pve1, Sys.Modify)"
