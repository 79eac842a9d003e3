"""The simulated `pct snapshot/delsnapshot/listsnapshot/clone/destroy`, `pct set` of
net/tags/hostname and `pvesh get /cluster/nextid`, on a two-node cluster sharing /etc/pve.

Every call goes through a node's `<root>/usr/sbin/pct` (or `pvesh`), as a caller would run it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from simnode import settings
from simnode.tree import ContainerSpec, NodeSpec, SimCluster, SimNode, build_cluster

SHARED_STORAGE = (
    "dir: local\n\tpath /var/lib/vz\n\tcontent iso,vztmpl,backup\n\n"
    "lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir,images\n\n"
    "nfs: tank\n\tpath /mnt/pve/tank\n\tserver 10.0.0.9\n\texport /srv/tank\n\tcontent rootdir\n"
)


@pytest.fixture
def cluster(tmp_path: Path) -> SimCluster:
    return build_cluster(
        tmp_path / "cluster",
        [
            NodeSpec(
                "pve1",
                8,
                16384,
                (
                    ContainerSpec(101, "web1", 2, 1024, tags="web"),
                    ContainerSpec(102, "web2", 1, 512, running=False, lock="backup"),
                    ContainerSpec(200, "tmpl", 1, 512, running=False, template=True),
                ),
            ),
            NodeSpec("pve2", 8, 16384, (ContainerSpec(103, "db1", 2, 2048),)),
        ],
        storage_cfg=SHARED_STORAGE,
    )


def pct(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(
        [str(node.pct_path), *args], capture_output=True, text=True, check=False, timeout=30, env=env
    )


def pvesh(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(node.pvesh_path), *args], capture_output=True, text=True, check=False, timeout=30
    )


def conf_text(cluster: SimCluster, node: str, vmid: int) -> str:
    return (cluster.pmxcfs_dir / "nodes" / node / "lxc" / f"{vmid}.conf").read_text(encoding="utf-8")


# ----------------------------------------------------------------------------- snapshots


def test_snapshot_writes_the_section_as_write_pct_config_and_sets_parent(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    before = int(time.time())
    res = pct(pve1, "snapshot", "101", "base", "--description", "before the clones")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    text = conf_text(cluster, "pve1", 101)
    main, _, section = text.partition("\n[base]\n")
    assert "parent: base\n" in main
    assert "lock:" not in text
    snaptime = int(re.search(r"^snaptime: (\d+)$", section, re.M).group(1))  # type: ignore[union-attr]
    assert before <= snaptime <= int(time.time())
    # the description as `#` lines first, then the current keys sorted, snaptime among them
    assert section.splitlines()[0] == "#before the clones"
    keys = [line.split(":")[0] for line in section.splitlines()[1:]]
    assert keys == sorted(keys)
    assert "parent" not in keys and "lock" not in keys


def test_listsnapshot_prints_the_tree_with_current_last(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "snapshot", "101", "first").returncode == 0
    assert pct(pve1, "snapshot", "101", "second", "--description", "line one\nline two").returncode == 0
    res = pct(pve1, "listsnapshot", "101")
    assert res.returncode == 0
    lines = res.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["`->", "first"], ["`->", "second"], ["`->", "current"]]
    assert lines[0].startswith("`-> first                       20")
    assert lines[0].endswith(" no-description")
    assert lines[1].startswith(" `-> second                     20")
    assert lines[1].endswith(" line one")
    # printf("%s %-${len}s %-23s %s\n"), len = 30 - length(prefix); no time for "current"
    assert lines[2] == "  `-> current" + " " * 18 + " " + " " * 23 + " You are here!"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("101", "current"), "unable to use snapshot name 'current' (reserved name)\n"),
        (("101", "vzdump"), "unable to use snapshot name 'vzdump' (reserved name)\n"),
        (("102", "s1"), "CT is locked (backup)\n"),
        (("200", "s1"), "you can't take a snapshot if it's a template\n"),
        (("555", "s1"), "Configuration file 'nodes/pve1/lxc/555.conf' does not exist\n"),
        (("103", "s1"), "Configuration file 'nodes/pve1/lxc/103.conf' does not exist\n"),
    ],
)
def test_snapshot_errors(cluster: SimCluster, args: tuple[str, str], message: str) -> None:
    before = conf_text(cluster, "pve2", 103)
    res = pct(cluster.node("pve1"), "snapshot", *args)
    assert (res.returncode, res.stdout, res.stderr) == (255, "", message)
    assert conf_text(cluster, "pve2", 103) == before


def test_snapshot_name_checks_are_parameter_errors(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    res = pct(pve1, "snapshot", "101", "1st")
    assert res.returncode == 255
    assert res.stderr == (
        "400 Parameter verification failed.\n"
        "snapname: invalid format - invalid configuration ID '1st'\n\n"
        "pct snapshot <vmid> <snapname> [OPTIONS]\n"
    )
    res = pct(pve1, "snapshot", "101", "s" * 41)
    assert res.stderr.splitlines()[1] == "snapname: value may only be 40 characters long"
    assert pct(pve1, "snapshot", "101", "again").returncode == 0
    assert pct(pve1, "snapshot", "101", "again").stderr == "snapshot name 'again' already used\n"


def test_delsnapshot_removes_the_section_and_relinks_parents(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    for name in ("a1", "b2", "c3"):
        assert pct(pve1, "snapshot", "101", name).returncode == 0
    res = pct(pve1, "delsnapshot", "101", "b2")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    text = conf_text(cluster, "pve1", 101)
    assert "[b2]" not in text
    c3 = text.split("[c3]\n")[1]
    assert "parent: a1\n" in c3  # c3's parent was b2: it inherits b2's parent
    assert pct(pve1, "delsnapshot", "101", "c3").returncode == 0
    assert "parent: a1\n" in conf_text(cluster, "pve1", 101).split("\n[")[0]
    res = pct(pve1, "delsnapshot", "101", "c3")
    assert (res.returncode, res.stderr) == (255, "snapshot 'c3' does not exist\n")


def test_delsnapshot_of_a_locked_ct_is_refused_and_changes_nothing(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "snapshot", "101", "s1").returncode == 0
    path = cluster.pmxcfs_dir / "nodes" / "pve1" / "lxc" / "101.conf"
    path.write_text(
        path.read_text(encoding="utf-8").replace("arch:", "lock: backup\narch:", 1), encoding="utf-8"
    )
    before = path.read_text(encoding="utf-8")
    res = pct(pve1, "delsnapshot", "101", "s1")
    assert (res.returncode, res.stderr) == (255, "CT is locked (backup)\n")
    assert path.read_text(encoding="utf-8") == before


# ----------------------------------------------------------------------------- clone


def test_full_clone_of_a_running_ct_from_its_snapshot(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "snapshot", "101", "base").returncode == 0
    res = pct(pve1, "clone", "101", "105", "--snapname", "base", "--hostname", "web-c1")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (
        "creating a clone of container 101 with ID 105\n"
        "create full clone of mountpoint rootfs (local-lvm:vm-101-disk-0)\n"
    )
    new = pve1.read_conf(105)
    src = pve1.read_conf(101)
    assert new["hostname"] == "web-c1"
    assert new["rootfs"] == "local-lvm:vm-105-disk-0,size=8G"
    assert new["tags"] == "web" and new["cores"] == "2"
    assert "lock" not in new and "lock" not in src and "parent" not in new
    net_src, net_new = src["net0"], new["net0"]
    assert re.sub(r"hwaddr=[^,]+", "", net_src) == re.sub(r"hwaddr=[^,]+", "", net_new)
    assert re.search(r"hwaddr=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2}", net_new)
    assert net_new != net_src
    assert "[base]" not in conf_text(cluster, "pve1", 105)
    assert not pve1.is_running(105)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("101", "105"), "Full clone of a running container is only possible from a snapshot\n"),
        (("101", "105", "--snapname", "nope"), "snapshot 'nope' does not exist\n"),
        (("102", "105"), "CT is locked (backup)\n"),
        (("101", "103"), "CT 103 already exists on node 'pve2'\n"),
        (
            ("101", "105", "--full", "0"),
            "Linked clone feature for 'local-lvm:vm-101-disk-0' is not available\n",
        ),
        (("200", "105", "--storage", "local-lvm"), "parameter 'storage' not allowed for linked clones\n"),
        (("101", "105", "--storage", "nowhere"), "storage 'nowhere' does not exist\n"),
        (("101", "105", "--target", "pve9"), "no such cluster node 'pve9'\n"),
        (("103", "105"), "Configuration file 'nodes/pve1/lxc/103.conf' does not exist\n"),
    ],
)
def test_clone_errors_leave_no_lock_and_no_new_config(
    cluster: SimCluster, args: tuple[str, ...], message: str
) -> None:
    pve1 = cluster.node("pve1")
    before = {vmid: conf_text(cluster, node, vmid) for vmid, node in cluster.vmids().items()}
    res = pct(pve1, "clone", *args)
    assert (res.returncode, res.stdout, res.stderr) == (255, "", message)
    assert cluster.vmids().keys() == before.keys()
    assert {vmid: conf_text(cluster, node, vmid) for vmid, node in cluster.vmids().items()} == before


def test_clone_parameter_errors_print_the_usage(cluster: SimCluster) -> None:
    res = pct(cluster.node("pve1"), "clone", "101", "99", "--hostname", "bad_name")
    assert res.returncode == 255
    assert res.stderr == (
        "400 Parameter verification failed.\n"
        "hostname: invalid format - value does not look like a valid DNS name\n\n"
        "newid: invalid format - value does not look like a valid VM ID\n\n"
        "pct clone <vmid> <newid> [OPTIONS]\n"
    )
    assert pct(cluster.node("pve1"), "clone", "101").stderr.startswith("400 not enough arguments\n")


def test_linked_clone_of_a_template(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    res = pct(pve1, "clone", "200", "201")
    assert res.returncode == 0, res.stderr
    assert (
        res.stdout.splitlines()[1] == "create linked clone of mount point rootfs (local-lvm:base-200-disk-0)"
    )
    new = pve1.read_conf(201)
    assert "template" not in new and new["rootfs"] == "local-lvm:vm-201-disk-0,size=8G"
    assert pve1.read_conf(200)["template"] == "1"


def start_slow_clone(node: SimNode, clone_s: float) -> subprocess.Popen[str]:
    """`pct clone 101 105 --snapname base` whose disk copy takes `clone_s` seconds."""
    settings.configure(node.root, clone_s=clone_s)
    assert pct(node, "snapshot", "101", "base").returncode == 0
    return subprocess.Popen(
        [str(node.pct_path), "clone", "101", "105", "--snapname", "base"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_locks_during_a_clone_are_proxmoxs(cluster: SimCluster) -> None:
    """clone_vm: the source holds `lock: disk`, the new config only `lock: create` (and no
    rootfs) while the disk is copied; other changes to either are refused meanwhile."""
    pve1 = cluster.node("pve1")
    proc = start_slow_clone(pve1, 6.0)  # long enough for the checks below on a busy machine
    try:
        new_conf = cluster.pmxcfs_dir / "nodes" / "pve1" / "lxc" / "105.conf"
        deadline = time.monotonic() + 10
        while "hostname" not in (new_conf.read_text(encoding="utf-8") if new_conf.exists() else ""):
            assert time.monotonic() < deadline, "the clone never wrote its config"
            time.sleep(0.02)
        assert pve1.read_conf(101)["lock"] == "disk"
        during = pve1.read_conf(105)
        assert during["lock"] == "create" and "rootfs" not in during
        assert pct(pve1, "set", "101", "-cores", "3").stderr == "CT is locked (disk)\n"
        assert pct(pve1, "start", "105").stderr == "CT is locked (create)\n"
        assert pct(pve1, "clone", "101", "106", "--snapname", "base").stderr == "CT is locked (disk)\n"
        listing = pct(pve1, "list").stdout.splitlines()
        assert listing[1].split() == ["101", "running", "disk", "web1"]
        assert listing[3].split() == ["105", "stopped", "create", "web1"]
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "lock" not in pve1.read_conf(101) and "lock" not in pve1.read_conf(105)
    assert pve1.read_conf(105)["rootfs"] == "local-lvm:vm-105-disk-0,size=8G"
    assert 106 not in cluster.vmids()


def test_sigterm_during_the_copy_cleans_up_as_proxmox(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    proc = start_slow_clone(pve1, 5.0)
    deadline = time.monotonic() + 10
    while "lock" not in pve1.read_conf(101) or 105 not in cluster.vmids():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 255
    assert err == "clone failed: interrupted by signal\n"
    assert out.splitlines() == [
        "creating a clone of container 101 with ID 105",
        "create full clone of mountpoint rootfs (local-lvm:vm-101-disk-0)",
    ]
    assert 105 not in cluster.vmids()
    assert "lock" not in pve1.read_conf(101)


def test_clone_to_another_node_needs_shared_storage(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    assert pct(pve1, "snapshot", "101", "base").returncode == 0
    res = pct(pve1, "clone", "101", "105", "--snapname", "base", "--target", "pve2")
    assert res.returncode == 255
    assert res.stderr == (
        "found non-shared volume: local-lvm:vm-101-disk-0\n"
        "can't clone CT to node 'pve2' (CT uses local storage)\n"
    )
    res = pct(pve1, "clone", "101", "105", "--snapname", "base", "--target", "pve2", "--storage", "tank")
    assert res.returncode == 0, res.stderr
    assert cluster.where(105) == "pve2"
    assert pve2.read_conf(105)["rootfs"] == "tank:105/vm-105-disk-0.raw,size=8G"
    assert "105" in pct(pve2, "list").stdout and "105" not in pct(pve1, "list").stdout
    assert pct(pve1, "start", "105").stderr == "Configuration file 'nodes/pve1/lxc/105.conf' does not exist\n"
    assert pct(pve2, "start", "105").returncode == 0
    assert pve2.is_running(105)


def test_new_volume_names_never_collide(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "clone", "200", "201").returncode == 0
    assert pct(pve1, "destroy", "201").returncode == 0
    assert pct(pve1, "clone", "200", "201").returncode == 0  # an id freed by destroy is free again
    assert pve1.read_conf(201)["rootfs"] == "local-lvm:vm-201-disk-0,size=8G"


# ----------------------------------------------------------------------------- destroy


def test_destroy_of_a_running_ct_needs_force(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    res = pct(pve1, "destroy", "101")
    assert (res.returncode, res.stderr) == (255, "unable to destroy CT 101 - container is running\n")
    assert pve1.is_running(101) and 101 in cluster.vmids()
    res = pct(pve1, "destroy", "101", "--force", "--purge")
    assert res.returncode == 0, res.stderr
    assert (
        res.stdout
        == "forced to stop CT 101 before destroying!\npurging CT 101 from related configurations..\n"
    )
    assert not pve1.is_running(101) and 101 not in cluster.vmids()


def test_destroy_errors(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "destroy", "102").stderr == "CT is locked (backup)\n"
    assert pct(pve1, "set", "200", "-protection", "1").returncode == 0
    assert pct(pve1, "destroy", "200").stderr == "can't remove CT 200 - protection mode enabled\n"
    assert (
        pct(pve1, "destroy", "103").stderr == "Configuration file 'nodes/pve1/lxc/103.conf' does not exist\n"
    )
    assert sorted(cluster.vmids()) == [101, 102, 103, 200]
    res = pct(pve1, "stop", "101")
    assert res.returncode == 0
    res = pct(pve1, "destroy", "101")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    assert 101 not in cluster.vmids()


# ----------------------------------------------------------------------------- pct set


def test_set_tags_are_stored_as_get_unique_tags_makes_them(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    assert pct(pve1, "set", "101", "-tags", "Web;autoscale-group-web,web").returncode == 0
    assert pve1.read_conf(101)["tags"] == "autoscale-group-web;web"
    res = pct(pve1, "set", "101", "-tags", "ok;b@d")
    assert res.stderr.splitlines()[:2] == [
        "400 Parameter verification failed.",
        "tags: invalid format - invalid characters in tag",
    ]


def test_set_net_is_normalised_and_hotplugged(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    res = pct(pve1, "set", "101", "-net0", "name=eth0,ip=10.0.0.5/24,gw=10.0.0.1,bridge=vmbr1")
    assert res.returncode == 0, res.stderr
    net = pve1.read_conf(101)["net0"]  # a running CT: applied at once, not left pending
    assert re.fullmatch(
        r"name=eth0,bridge=vmbr1,gw=10\.0\.0\.1,hwaddr=BC:24:11:[0-9A-F:]{8},ip=10\.0\.0\.5/24,type=veth", net
    )
    assert "[pve:pending]" not in conf_text(cluster, "pve1", 101)
    res = pct(pve1, "set", "101", "-net0", "name=eth0,colour=red")
    assert res.stderr.splitlines()[1] == (
        "net0: invalid format - invalid key in comma-separated list property: colour"
    )
    res = pct(pve1, "set", "101", "-hostname", "web_1")
    assert (
        res.stderr.splitlines()[1] == "hostname: invalid format - value does not look like a valid DNS name"
    )
    assert pct(pve1, "set", "101", "-hostname", "web-1").returncode == 0
    assert pve1.read_conf(101)["hostname"] == "web-1"


# ----------------------------------------------------------------------------- nextid and cluster


def test_nextid_is_the_first_free_id_of_the_whole_cluster(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    assert pvesh(pve2, "get", "/cluster/nextid").stdout == "100\n"
    assert pct(pve1, "clone", "200", "100").returncode == 0  # now 100..103 are taken on two nodes
    assert pvesh(pve2, "get", "/cluster/nextid", "--output-format", "json").stdout == '"104"\n'
    res = pvesh(pve1, "get", "/cluster/nextid", "--vmid", "103")
    assert (res.returncode, res.stdout) == (255, "")
    assert res.stderr == "400 Parameter verification failed.\nvmid: VM 103 already exists\n"
    assert pvesh(pve1, "get", "/cluster/nextid", "--vmid", "150").stdout == "150\n"
    cluster.write_cluster_file("datacenter.cfg", "keyboard: en-us\nnext-id: lower=102,upper=105\n")
    assert pvesh(pve1, "get", "/cluster/nextid").stdout == "104\n"
    cluster.write_cluster_file("datacenter.cfg", "next-id: lower=101,upper=104\n")
    res = pvesh(pve1, "get", "/cluster/nextid")
    assert (res.returncode, res.stderr) == (255, "unable to get any free VMID in range [101, 104]\n")


def test_cluster_resources_lists_every_node(cluster: SimCluster) -> None:
    res = pvesh(cluster.node("pve2"), "get", "/cluster/resources", "--output-format", "json")
    assert res.returncode == 0
    import json

    entries = json.loads(res.stdout)
    assert {(e["id"], e["node"]) for e in entries} == {
        ("lxc/101", "pve1"),
        ("lxc/102", "pve1"),
        ("lxc/103", "pve2"),
        ("lxc/200", "pve1"),
        ("node/pve1", "pve1"),
        ("node/pve2", "pve2"),
    }


def test_build_cluster_refuses_a_vmid_on_two_nodes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unique across the cluster"):
        build_cluster(
            tmp_path / "c",
            [
                NodeSpec("pve1", 2, 2048, (ContainerSpec(101, "a", 1, 512),)),
                NodeSpec("pve2", 2, 2048, (ContainerSpec(101, "b", 1, 512),)),
            ],
        )
    assert not (tmp_path / "c").exists()  # checked before anything is written


# ---------------------------------------------------------------- pvesh on a CT of another node


def pvesh_log(node: SimNode) -> list[str]:
    return [" ".join(call) for call in node.pvesh_calls()]


def test_pvesh_set_on_another_node_is_proxied_there_and_changes_that_nodes_ct(
    cluster: SimCluster,
) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    res = pvesh(pve1, "set", "/nodes/pve2/lxc/103/config", "--tags", "web;Autoscale-Group-web")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")  # update_vm returns null
    assert pve2.read_conf(103)["tags"] == "autoscale-group-web;web"  # stored as `pct set` stores it
    # run on pve2 by its own pvesh, as pvesh.pm's proxy_handler calls it over SSH
    assert pvesh_log(pve2) == ["--noproxy set /nodes/pve2/lxc/103/config --output-format json --tags "
                               "web;Autoscale-Group-web"]  # fmt: skip
    net0 = "name=eth0,bridge=vmbr0,ip=10.0.0.5/24,gw=10.0.0.1,type=veth"
    assert pvesh(pve1, "set", "/nodes/pve2/lxc/103/config", "--net0", net0).returncode == 0
    assert re.fullmatch(r"name=eth0,bridge=vmbr0,gw=10\.0\.0\.1,hwaddr=BC:24:11(:[0-9A-F]{2}){3},"
                        r"ip=10\.0\.0\.5/24,type=veth", pve2.read_conf(103)["net0"])  # fmt: skip


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (  # a CT of pve1 named under pve2: pve2's load_config does not find it
            ("set", "/nodes/pve2/lxc/101/config", "--tags", "x"),
            "proxy handler failed: Configuration file 'nodes/pve2/lxc/101.conf' does not exist\n",
        ),
        (  # the remote pvesh's 400: its lines passed on (not the empty one); the last is the error
            ("set", "/nodes/pve2/lxc/10/config", "--tags", "x"),
            "400 Parameter verification failed.\n"
            "vmid: invalid format - value does not look like a valid VM ID\n"
            "proxy handler failed: pvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n",
        ),
        (
            ("get", "/nodes/pve9/lxc/103/status/current", "--output-format", "json"),
            "hostname lookup 'pve9' failed - failed to get address info for: pve9: "
            "Name or service not known\n",
        ),
        (("--noproxy", "create", "/nodes/pve2/lxc/103/status/start"), "proxy loop detected - aborting\n"),
        (("create", "/nodes/pve2/lxc/103/status/start"), "proxy handler failed: CT 103 already running\n"),
    ],
    ids=["wrong-node", "remote-400", "unknown-node", "noproxy", "running"],
)
def test_pvesh_on_another_node_fails_as_pvesh_does(
    cluster: SimCluster, args: tuple[str, ...], stderr: str
) -> None:
    res = pvesh(cluster.node("pve1"), *args)
    assert (res.returncode, res.stdout, res.stderr) == (255, "", stderr)


def test_pvesh_checks_the_methods_parameters_before_proxying(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    res = pvesh(pve1, "set", "/nodes/pve2/lxc/103/config", "--net0", "name=eth0,bridge")
    assert res.returncode == 255 and res.stderr.startswith("400 Parameter verification failed.\nnet0: ")
    assert res.stderr.endswith("\npvesh set <api_path> [OPTIONS] [FORMAT_OPTIONS]\n")
    assert pvesh_log(pve2) == []  # never reached pve2
    res = pvesh(pve1, "create", "/nodes/pve2/lxc/103/config")
    no_handler = "No 'create' handler defined for '/nodes/pve2/lxc/103/config'\n"
    assert (res.returncode, res.stderr) == (1, no_handler)


def test_a_locked_ct_of_another_node_is_refused_with_its_lock(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    assert pct(pve2, "snapshot", "103", "base").returncode == 0
    assert pct(pve2, "clone", "103", "106", "--snapname", "base").returncode == 0
    (pve2.conf_path(106)).write_text(pve2.conf_path(106).read_text() + "lock: backup\n")
    res = pvesh(pve1, "set", "/nodes/pve2/lxc/106/config", "--tags", "x")
    assert (res.returncode, res.stderr) == (255, "proxy handler failed: CT is locked (backup)\n")


def test_pvesh_start_on_another_node_waits_for_its_task_and_exits_0_even_when_it_fails(
    cluster: SimCluster,
) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    assert pct(pve2, "stop", "103").returncode == 0
    res = pvesh(pve1, "create", "/nodes/pve2/lxc/103/status/start")
    assert res.returncode == 0 and res.stderr == ""
    assert re.fullmatch(r"UPID:pve2:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:vzstart:103:root@pam:\n", res.stdout)
    assert pve2.is_running(103)  # the task ran in the foreground: started when pvesh returns
    # the task fails (the CT is not on pve2), the UPID is printed, the error only on stderr
    res = pvesh(pve1, "create", "/nodes/pve2/lxc/101/status/start")
    assert res.returncode == 0 and ":vzstart:101:root@pam:" in res.stdout
    assert res.stderr == "Configuration file 'nodes/pve2/lxc/101.conf' does not exist\n"


def test_pvesh_status_of_another_nodes_ct_is_vmstatus_as_json(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    res = pvesh(pve1, "get", "/nodes/pve2/lxc/103/status/current", "--output-format", "json")
    status = json.loads(res.stdout)
    assert res.returncode == 0 and res.stdout.startswith('{"cpu":0,"cpus":2,')  # canonical, compact
    assert {k: status[k] for k in ("status", "vmid", "name", "type", "maxmem", "ha")} == {
        "status": "running", "vmid": 103, "name": "db1", "type": "lxc", "maxmem": 2048 * 1024**2,
        "ha": {"managed": 0},
    }  # fmt: skip
    assert pct(pve2, "stop", "103").returncode == 0
    res = pvesh(pve1, "get", "/nodes/pve2/lxc/103/status/current", "--output-format", "json")
    assert json.loads(res.stdout)["status"] == "stopped"
    local = pvesh(pve2, "get", "/nodes/localhost/lxc/103/status/current", "--output-format", "json")
    assert json.loads(local.stdout)["status"] == "stopped"
    assert pvesh_log(pve2)[-1].startswith("get /nodes/localhost")
