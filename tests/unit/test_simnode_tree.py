"""The node tree builder and the config-file codec."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from simnode import conffile
from simnode.tree import ContainerSpec, SimNode, build_node

MIB = 1024 * 1024


@pytest.fixture
def node(tmp_path: Path) -> SimNode:
    return build_node(
        tmp_path / "node",
        node_name="pve1",
        host_cores=16,
        host_memory_mb=32768,
        containers=[
            ContainerSpec(101, "web1", 2, 1024, tags="web", description="web tier\nsecond line"),
            ContainerSpec(102, "web2", 1, 512, running=False, lock="backup", snapshots=("a", "b")),
            ContainerSpec(201, "db1", 4, 4096, cpulimit=1.5),
        ],
    )


def test_conf_file_is_written_as_proxmox_writes_it(node: SimNode) -> None:
    assert node.conf_path(101).read_text(encoding="utf-8") == (
        "#web tier\n"
        "#second line\n"
        "arch: amd64\n"
        "cores: 2\n"
        "hostname: web1\n"
        "memory: 1024\n"
        "net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:65,ip=dhcp,type=veth\n"
        "ostype: debian\n"
        "rootfs: local-lvm:vm-101-disk-0,size=8G\n"
        "swap: 512\n"
        "tags: web\n"
        "unprivileged: 1\n"
    )


def test_lxc_dir_is_the_local_node_symlink(node: SimNode) -> None:
    lxc = node.root / "etc" / "pve" / "lxc"
    assert lxc.is_symlink()
    assert os.readlink(lxc) == "nodes/pve1/lxc"
    assert (node.root / "etc" / "pve" / "nodes" / "pve1" / "lxc" / "101.conf").is_file()
    assert (node.root / "etc" / "hostname").read_text(encoding="utf-8") == "pve1\n"


def test_lock_cpulimit_and_snapshots(node: SimNode) -> None:
    text = node.conf_path(102).read_text(encoding="utf-8")
    assert "lock: backup\n" in text
    assert "parent: b\n" in text
    assert "\n[a]\n" in text and "\n[b]\n" in text and "parent: a\n" in text
    assert node.read_conf(201)["cpulimit"] == "1.5"
    assert node.read_conf(101)["description"] == "web tier\nsecond line\n"


def test_running_container_has_cgroup_v2_files(node: SimNode) -> None:
    cg = node.cgroup_dir(101)
    assert node.read_cgroup(101, "memory.max") == f"{1024 * MIB}\n"
    assert node.read_cgroup(101, "memory.current") == "0\n"
    stat = node.read_cgroup(101, "cpu.stat").splitlines()
    assert stat[:6] == [
        "usage_usec 0",
        "user_usec 0",
        "system_usec 0",
        "nr_periods 0",
        "nr_throttled 0",
        "throttled_usec 0",
    ]
    mstat = dict(line.split(" ") for line in node.read_cgroup(101, "memory.stat").splitlines())
    for key in ("anon", "file", "kernel", "shmem", "active_file", "inactive_file"):
        assert mstat[key] == "0"
    assert node.read_cgroup(101, "cpu.pressure") == (
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )
    events = node.read_cgroup(101, "memory.events").splitlines()
    assert events[:5] == ["low 0", "high 0", "max 0", "oom 0", "oom_kill 0"]
    assert (cg / "memory.pressure").is_file()
    assert node.read_cgroup(201, "cpu.max") == "150000 100000\n"


def test_stopped_container_has_no_cgroup(node: SimNode) -> None:
    assert node.conf_path(102).is_file()
    assert not node.cgroup_dir(102).exists()
    assert not node.is_running(102)


def test_host_files(node: SimNode) -> None:
    meminfo = (node.root / "proc" / "meminfo").read_text(encoding="utf-8").splitlines()
    assert meminfo[0] == "MemTotal:       33554432 kB"
    labels = [line.split(":")[0] for line in meminfo]
    for label in ("MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal", "SwapFree"):
        assert label in labels
    online = node.root / "sys" / "devices" / "system" / "cpu" / "online"
    assert online.read_text(encoding="utf-8") == "0-15\n"


def test_pct_wrapper_is_an_executable_shell_script(node: SimNode) -> None:
    text = node.pct_path.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert "-m simnode.pct --root" in text and text.rstrip().endswith('"$@"')
    assert os.access(node.pct_path, os.X_OK)


def test_open_attaches_to_an_existing_tree(node: SimNode) -> None:
    again = SimNode.open(node.root)
    assert (again.node_name, again.host_cores, again.host_memory_mb) == ("pve1", 16, 32768)
    assert again.vmids() == [101, 102, 201]


def test_bad_specs_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vmid"):
        ContainerSpec(99, "x", 1, 512)
    with pytest.raises(ValueError, match="cores"):
        ContainerSpec(100, "x", 0, 512)
    with pytest.raises(ValueError, match="duplicate"):
        build_node(
            tmp_path,
            node_name="pve1",
            host_cores=2,
            host_memory_mb=1024,
            containers=[ContainerSpec(100, "a", 1, 512), ContainerSpec(100, "b", 1, 512)],
        )


# ----------------------------------------------------------------------------- conffile


def test_encode_and_decode_text_round_trip() -> None:
    assert conffile.encode_text("a: b\nc é") == "a%3A b%0Ac %C3%A9"
    assert conffile.decode_text("a%3A b%0Ac %C3%A9") == "a: b\nc é"


def test_parse_sections_description_lxc_and_warnings() -> None:
    raw = (
        "#hello\ncores: 2\nonboot: yes\nlxc.mount.entry = /a b none bind 0 0\n"
        "bogus line\n\n[snap1]\ncores: 1\n"
    )
    conf = conffile.parse(raw, 101)
    assert conf.main.description == "hello\n"
    assert conf.main.keys == {"cores": "2", "onboot": "1"}
    assert conf.main.lxc == [("lxc.mount.entry", "/a b none bind 0 0")]
    assert conf.snapshots["snap1"].keys == {"cores": "1"}
    assert conf.warnings == ["vm 101 - unable to parse config: bogus line\n"]
    assert len(conf.digest) == 40


def test_edit_only_touches_changed_lines() -> None:
    raw = "#d\narch: amd64\ncores: 2\nswap: 512\nlxc.x: 1\n\n[snap]\ncores: 1\nmemory: 1\n"
    out = conffile.edit(raw, {"cores": "4", "memory": "2048"})
    assert (
        out == "#d\narch: amd64\ncores: 4\nmemory: 2048\nswap: 512\nlxc.x: 1\n\n[snap]\ncores: 1\nmemory: 1\n"
    )


def test_edit_delete_and_description() -> None:
    raw = "#old\ncores: 2\ncpulimit: 1\nmemory: 512\n"
    out = conffile.edit(raw, {}, deletes=["cpulimit"], description="new: one\ntwo")
    assert out == "#new%3A one\n#two\ncores: 2\nmemory: 512\n"
