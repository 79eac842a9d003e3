"""Which REST call the API executor makes for each argument tuple of the closed command
set (pct forms, the cross-node pvesh forms of the CONTRACT, /cluster/nextid), and that
anything else is refused before a call is made."""

from __future__ import annotations

import pytest

from services.actuator import group_commands as gc
from services.actuator.commands import ReadConfig, Resize, Start, Stop, argv
from services.actuator.executors.api_calls import ApiCall, Unsupported, api_call, upid_node

PCT, PVESH = "/usr/sbin/pct", "/usr/bin/pvesh"
CT = "/nodes/pve1/lxc/101"


def call(args: tuple[str, ...]) -> ApiCall:
    return api_call(args, "pve1")


def test_the_resize_commands_keep_their_calls() -> None:
    assert call(argv(ReadConfig(101), PCT)) == ApiCall("GET", f"{CT}/config", {"current": "1"}, "config")
    assert call(argv(Resize(101, cores=3, memory_mb=2048), PCT)) == ApiCall(
        "PUT", f"{CT}/config", {"cores": "3", "memory": "2048"}
    )
    assert call(argv(Start(101), PCT)) == ApiCall("POST", f"{CT}/status/start", {}, "task")
    assert call(argv(Stop(101), PCT)) == ApiCall("POST", f"{CT}/status/stop", {}, "task")


def test_every_group_command_is_one_call_on_the_executors_node() -> None:
    net = gc.net0("vmbr1", "10.0.0.21/24", "10.0.0.1", "bc:24:11:00:00:01")
    clone = gc.clone(101, 205, snapname="autoscale-abc", hostname="web-205", full=True, storage="tank")
    snap = "autoscale-abc"
    expected = {
        gc.snapshot(101, snap): ApiCall("POST", f"{CT}/snapshot", {"snapname": snap}, "task"),
        gc.delete_snapshot(101, snap): ApiCall("DELETE", f"{CT}/snapshot/{snap}", {}, "task"),
        clone: ApiCall("POST", f"{CT}/clone", {"newid": "205", "snapname": snap, "hostname": "web-205",
                                              "full": "1", "storage": "tank"}, "task"),
        gc.set_tags(101, ("web", "autoscale-group-web")): ApiCall(
            "PUT", f"{CT}/config", {"tags": "web;autoscale-group-web"}),
        gc.set_net(101, net): ApiCall("PUT", f"{CT}/config", {
            "net0": "name=eth0,bridge=vmbr1,hwaddr=BC:24:11:00:00:01,ip=10.0.0.21/24,gw=10.0.0.1,type=veth"}),
        gc.status(101): ApiCall("GET", f"{CT}/status/current", {}, "status"),
        gc.destroy(101, allow_destroy=True): ApiCall("DELETE", CT, {"purge": "1"}, "task"),
    }  # fmt: skip
    for operation, wanted in expected.items():
        assert call(gc.group_argv(operation, PCT)) == wanted, operation


def test_a_clone_with_a_target_node_passes_it_on() -> None:
    clone = gc.clone(101, 205, snapname="s1", hostname="h", full=None, target="pve2")
    assert call(gc.group_argv(clone, PCT)).params == {
        "newid": "205", "snapname": "s1", "hostname": "h", "target": "pve2"
    }  # fmt: skip


def test_the_contracts_pvesh_forms_go_to_the_node_in_their_path() -> None:
    ct2 = "/nodes/pve2/lxc/205"
    assert call((PVESH, "set", f"{ct2}/config", "--tags", "web;autoscale-group-web")) == ApiCall(
        "PUT", f"{ct2}/config", {"tags": "web;autoscale-group-web"}
    )
    net0 = "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth"
    assert call((PVESH, "set", f"{ct2}/config", "--net0", net0)) == ApiCall(
        "PUT", f"{ct2}/config", {"net0": net0}
    )
    assert call((PVESH, "create", f"{ct2}/status/start")) == ApiCall(
        "POST", f"{ct2}/status/start", {}, "task"
    )
    assert call((PVESH, "get", f"{ct2}/status/current", "--output-format", "json")) == ApiCall(
        "GET", f"{ct2}/status/current", {}, "json"
    )
    assert call((PVESH, "get", "/cluster/nextid", "--vmid", "205")) == ApiCall(
        "GET", "/cluster/nextid", {"vmid": "205"}, "value"
    )


@pytest.mark.parametrize(
    "args",
    [
        (PCT, "set", "101", "-cores", "two"),
        (PCT, "set", "101", "-hookscript", "local:snippets/x.pl"),
        (PCT, "set", "101", "-tags", "a b"),  # a space: not what set_tags renders
        (PCT, "set", "101", "-net0", "name=eth0;reboot"),
        (PCT, "set", "101", "-cores", "2", "-cores", "3"),
        (PCT, "destroy", "101"),  # without --purge: never rendered
        (PCT, "destroy", "101", "--purge", "--force"),
        (PCT, "snapshot", "101", "x"),  # too short for a snapshot name
        (PCT, "clone", "101", "205", "--pool", "p1"),
        (PCT, "clone", "101", "205", "--target", "pve2;x"),
        (PCT, "exec", "101", "--", "rm"),
        (PCT, "delsnapshot", "101", "../config"),
        (PVESH, "set", "/nodes/pve2/lxc/205/config", "--cores", "64"),
        (PVESH, "set", "/nodes/pve2/lxc/205/config", "--tags", "a", "--tags", "b"),
        (PVESH, "create", "/nodes/pve2/lxc/205/status/stop"),
        (PVESH, "create", "/nodes/pve2/qemu/205/status/start"),
        (PVESH, "delete", "/nodes/pve2/lxc/205"),
        (PVESH, "get", "/nodes/pve2/lxc/205/status/current"),  # text output is not what we parse
        (PVESH, "get", "/nodes/pve 2/lxc/205/status/current", "--output-format", "json"),
        (PVESH, "get", "/access/users", "--output-format", "json"),
        (PVESH, "get", "/cluster/nextid", "--vmid", "12"),
        (PCT,),
    ],
)
def test_anything_else_is_refused(args: tuple[str, ...]) -> None:
    with pytest.raises(Unsupported, match="cannot run"):
        call(args)


def test_a_tasks_node_comes_from_its_upid() -> None:
    assert upid_node("UPID:pve2:00001234:0000ABCD:6560F000:vzclone:101:autoscale@pve!actuator:") == "pve2"
    with pytest.raises(Unsupported):
        upid_node("UPID:../x:1:2:3:vzclone:101:u:")
