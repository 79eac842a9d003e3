"""The group command set: argument lists from checked values, nothing else reaches pct."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.actuator import group_commands as gc
from services.actuator.commands import CommandRefused
from services.actuator.ct_view import parse_ct
from services.actuator.ip_pool import PoolError, parse_pool, pick
from services.actuator.pvesh_result import current_status, task_result
from services.actuator.result import CommandResult

PCT = "/usr/sbin/pct"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (gc.snapshot(101, "autoscale-ab12"), (PCT, "snapshot", "101", "autoscale-ab12")),
        (gc.delete_snapshot(101, "autoscale-ab12"), (PCT, "delsnapshot", "101", "autoscale-ab12")),
        (
            gc.clone(101, 200, snapname="autoscale-ab12", hostname="web-200"),
            (
                PCT,
                "clone",
                "101",
                "200",
                "--snapname",
                "autoscale-ab12",
                "--hostname",
                "web-200",
                "--full",
                "1",
            ),
        ),
        (
            gc.clone(101, 200, snapname="s1", hostname="web-200", storage="local-lvm", target="pve2"),
            (
                PCT,
                "clone",
                "101",
                "200",
                "--snapname",
                "s1",
                "--hostname",
                "web-200",
                "--full",
                "1",
                "--storage",
                "local-lvm",
                "--target",
                "pve2",
            ),
        ),
        (
            gc.clone(101, 200, snapname="s1", hostname="web-200", full=False),
            (PCT, "clone", "101", "200", "--snapname", "s1", "--hostname", "web-200", "--full", "0"),
        ),
        (
            gc.clone(101, 200, snapname="s1", hostname="web-200", full=None),
            (PCT, "clone", "101", "200", "--snapname", "s1", "--hostname", "web-200"),
        ),
        (
            gc.set_net(200, gc.net0("vmbr1", "10.0.0.5/24", "10.0.0.1", "bc:24:11:aa:bb:cc")),
            (
                PCT,
                "set",
                "200",
                "-net0",
                "name=eth0,bridge=vmbr1,hwaddr=BC:24:11:AA:BB:CC,ip=10.0.0.5/24,gw=10.0.0.1,type=veth",
            ),
        ),
        (
            gc.set_net(200, gc.net0("vmbr0", "dhcp")),
            (PCT, "set", "200", "-net0", "name=eth0,bridge=vmbr0,ip=dhcp,type=veth"),
        ),
        (
            gc.set_tags(200, ("prod", gc.group_tag("Web"))),
            (PCT, "set", "200", "-tags", "prod;autoscale-group-web"),
        ),
        (gc.status(200), (PCT, "status", "200")),
        (gc.start(200), (PCT, "start", "200")),
        (gc.stop(200), (PCT, "stop", "200")),
        (gc.destroy(200, allow_destroy=True), (PCT, "destroy", "200", "--purge")),
    ],
    ids=[
        "snapshot",
        "delsnapshot",
        "clone",
        "clone-storage-target",
        "clone-linked",
        "clone-proxmox-default",
        "net0-static",
        "net0-dhcp",
        "tags",
        "status",
        "start",
        "stop",
        "destroy",
    ],
)
def test_each_operation_renders_as_pct_expects(
    operation: gc.GroupOperation, expected: tuple[str, ...]
) -> None:
    assert gc.group_argv(operation, PCT) == expected


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: gc.snapshot(101, "x; reboot"), "invalid-snapname"),
        (lambda: gc.snapshot(101, "1abc"), "invalid-snapname"),
        (lambda: gc.clone(101, 101, snapname="s1", hostname="a"), "invalid-vmid"),
        (lambda: gc.clone(101, 200, snapname="s1", hostname="web_200"), "invalid-hostname"),
        (lambda: gc.clone(101, 200, snapname="s1", hostname="a", storage="--x"), "invalid-storage"),
        (
            lambda: gc.clone(101, 200, snapname="s1", hostname="a", storage="local", full=False),
            "invalid-storage",
        ),
        (lambda: gc.clone(101, 200, snapname="s1", hostname="a", target="pve 2"), "invalid-node"),
        (lambda: gc.net0("vmbr0,ip=1.2.3.4", "dhcp"), "invalid-bridge"),
        (lambda: gc.net0("vmbr0", "10.0.0.5"), "invalid-ip"),
        (lambda: gc.net0("vmbr0", "10.0.0.5/24,gw=1.1.1.1"), "invalid-ip"),
        (lambda: gc.net0("vmbr0", "dhcp", gateway="10.0.0.256"), "invalid-gateway"),
        (lambda: gc.net0("vmbr0", "dhcp", hwaddr="zz"), "invalid-hwaddr"),
        (lambda: gc.set_tags(200, ("a;b",)), "invalid-tag"),
        (lambda: gc.set_tags(200, ()), "invalid-tag"),
        (lambda: gc.destroy(200, allow_destroy=False), "destroy-not-allowed"),
        (lambda: gc.start(True), "invalid-vmid"),
    ],
)
def test_bad_values_are_refused_before_any_executor_sees_them(build: Any, code: str) -> None:
    with pytest.raises(CommandRefused) as refused:
        build()
    assert refused.value.code == code


def test_a_hand_built_value_is_checked_again_when_rendered() -> None:
    with pytest.raises(CommandRefused):
        gc.group_argv(gc.Clone(101, 200, "s1", "web;reboot"))
    with pytest.raises(CommandRefused):
        gc.group_argv(gc.SetNet(200, gc.Net0("vmbr0", "dhcp", name="eth0;x")))


@given(st.text(max_size=30))
def test_no_hostname_or_snapshot_text_becomes_more_than_one_token(text: str) -> None:
    try:
        args = gc.group_argv(gc.clone(101, 200, snapname=text or "s1", hostname=text or "h"))
    except CommandRefused:
        return
    assert all(token.isprintable() and " " not in token and ";" not in token for token in args)


def test_a_config_file_shows_lock_tags_nets_and_snapshots() -> None:
    view = parse_ct(
        "hostname: web-200\nlock: create\ntags: prod;Autoscale-Group-web\n"
        "net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=10.0.0.5/24,type=veth\n"
        "net1: name=eth1,bridge=vmbr1,ip=dhcp\n\n[autoscale-1]\nnet0: name=eth0,ip=10.0.0.99/24\n"
        "\n[pve:pending]\ncores: 4\n"
    )
    assert view.lock == "create" and view.tags == ("prod", "autoscale-group-web")
    assert view.snapshots == {"autoscale-1"} and view.hostname == "web-200"
    assert view.addresses == {ipaddress.IPv4Address("10.0.0.5")}  # not the snapshot's, not dhcp


def test_the_pool_never_hands_out_an_address_in_use_or_reserved() -> None:
    pool = parse_pool(["10.0.0.10", "10.0.0.11/25", "10.0.0.12/24", "10.0.0.10"])
    assert [p.cidr for p in pool] == ["10.0.0.10/24", "10.0.0.11/25", "10.0.0.12/24"]
    used = {ipaddress.IPv4Address("10.0.0.10")}
    reserved = {ipaddress.IPv4Address("10.0.0.11")}
    chosen = pick(pool, used, reserved)
    assert chosen is not None and (chosen.cidr, chosen.key_token) == ("10.0.0.12/24", "10-0-0-12")
    assert pick(pool, used, reserved, skip={chosen.address}) is None
    with pytest.raises(PoolError, match=r"10\.0\.0\.300"):
        parse_pool(["10.0.0.300"])


@given(st.lists(st.integers(0, 7), max_size=20))
def test_handing_out_addresses_one_by_one_never_repeats_one(order: list[int]) -> None:
    pool = parse_pool([f"192.168.5.{n}" for n in range(10, 16)])
    reserved: set[ipaddress.IPv4Address] = set()
    handed = []
    for step in order:  # some steps release an address again (a clone that never came)
        chosen = pick(pool, (), reserved)
        if chosen is None:
            break
        reserved.add(chosen.address)
        handed.append(chosen.address)
        if step == 0 and handed:
            reserved.discard(handed.pop())
    assert len(handed) == len(set(handed)) == len(reserved)


PVESH = "/usr/bin/pvesh"


@pytest.mark.parametrize(
    ("operation", "expected"),
    [
        (
            gc.on_node("pve2", gc.set_tags(200, ("prod", "autoscale-group-web"))),
            (PVESH, "set", "/nodes/pve2/lxc/200/config", "--tags", "prod;autoscale-group-web"),
        ),
        (
            gc.on_node("pve2", gc.set_net(200, gc.net0("vmbr0", "10.0.0.5/24", "10.0.0.1"))),
            (
                PVESH, "set", "/nodes/pve2/lxc/200/config", "--net0",
                "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,type=veth",
            ),
        ),
        (gc.on_node("pve2", gc.start(200)), (PVESH, "create", "/nodes/pve2/lxc/200/status/start")),
        (
            gc.on_node("pve2", gc.status(200)),
            (PVESH, "get", "/nodes/pve2/lxc/200/status/current", "--output-format", "json"),
        ),
    ],
    ids=["tags", "net0", "start", "status"],
)  # fmt: skip
def test_a_step_on_another_node_renders_as_the_contracts_pvesh_argv(
    operation: gc.GroupOperation, expected: tuple[str, ...]
) -> None:
    assert gc.group_argv(operation, PCT, PVESH) == expected


@pytest.mark.parametrize(
    ("build", "code"),
    [
        (lambda: gc.on_node("pve2/../x", gc.start(200)), "invalid-node"),
        (lambda: gc.on_node("-pve2", gc.start(200)), "invalid-node"),
        (lambda: gc.on_node("pve2", gc.stop(200)), "unknown-operation"),  # type: ignore[arg-type]
        (lambda: gc.on_node("pve2", gc.destroy(200, allow_destroy=True)), "unknown-operation"),  # type: ignore[arg-type]
        (lambda: gc.group_argv(gc.OnNode("pve 2", gc.Status(200))), "invalid-node"),
        (lambda: gc.group_argv(gc.OnNode("pve2", gc.SetTags(200, ("a;b",)))), "invalid-tag"),
        (lambda: gc.group_argv(gc.on_node("pve2", gc.start(200)), PCT, "pvesh"), "invalid-pct-path"),
    ],
)
def test_a_remote_step_is_refused_for_a_bad_node_operation_or_value(build: Any, code: str) -> None:
    with pytest.raises(CommandRefused) as refused:
        build()
    assert refused.value.code == code


@pytest.mark.parametrize(
    ("exit_code", "stderr", "expected"),
    [
        (0, "", 0),
        (0, "Task finished with 1 warning(s)!\n", 0),
        (0, "CT is locked (backup)\n", 255),  # a task error: pvesh still exits 0
        (255, "proxy handler failed: Configuration file 'nodes/pve2/lxc/200.conf' does not exist\n", 255),
    ],
)
def test_a_foreground_task_that_failed_is_a_failure_though_pvesh_exits_0(
    exit_code: int, stderr: str, expected: int
) -> None:
    upid = "UPID:pve2:00001234:00000001:6560A1B2:vzstart:200:root@pam:\n"
    done = task_result(CommandResult(exit_code, upid, stderr))
    assert done.exit_code == expected and done.stderr == stderr


def test_the_status_of_another_nodes_container_comes_from_vm_statuss_object() -> None:
    assert current_status('{"status":"running","vmid":200,"ha":{"managed":0}}\n') == "running"
    assert current_status('"stopped"') is None
    assert current_status("UPID:pve2:…") is None
