"""The simulated node behaves as Proxmox does where it matters to an autoscaler
(docs/fidelity.md, points 1-6): late cores, OOM on a memory cut, pvesh figures,
failed hotplugs on PVE 7 and 8, and the smaller defaults."""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import pytest

from shared.clock import FakeClock
from simnode import faults, locking, pct, pvestatd, settings
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import RESTART_S, LoadProfile, Phase, WorkloadDriver

MIB = 1024 * 1024


def make(tmp_path: Path, *specs: ContainerSpec, host_cores: int = 8) -> SimNode:
    return build_node(
        tmp_path / "node",
        node_name="pve1",
        host_cores=host_cores,
        host_memory_mb=32768,
        containers=list(specs),
    )


def run(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(node.pct_path), *args], capture_output=True, text=True, check=False, timeout=30
    )


def pvesh(node: SimNode) -> dict[int, dict[str, object]]:
    res = subprocess.run(
        [str(node.pvesh_path), "get", "/cluster/resources", "--type", "vm", "--output-format", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return {int(e["vmid"]): e for e in json.loads(res.stdout)}


def usage(node: SimNode, vmid: int) -> int:
    return int(node.read_cgroup(vmid, "cpu.stat").split("\n")[0].split()[1])


def events(node: SimNode, vmid: int) -> dict[str, int]:
    return {k: int(v) for k, v in (ln.split() for ln in node.read_cgroup(vmid, "memory.events").splitlines())}


def steady(cpu: float, mem: int, cache: int = 0) -> LoadProfile:
    return LoadProfile((Phase(3600, cpu, mem, cache),))


# ---------------------------------------------------------------- 1. cores take effect late


def test_grown_cores_run_on_the_old_cpuset_until_pvestatd_rebalances(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 1, 1024))
    driver = WorkloadDriver(node, {101: steady(1.8, 200)}, FakeClock().monotonic)
    assert driver.pvestatd_period_s == 10.0  # pvestatd's $updatetime
    driver.advance(5)
    assert run(node, "set", "101", "-cores", "2").returncode == 0
    assert node.read_conf(101)["cores"] == "2"
    driver.advance(4)  # t=9: no pvestatd pass yet
    assert node.read_cgroup(101, "cpuset.cpus.effective") == "0\n"
    assert usage(node, 101) == 9 * 1_000_000  # saturated: one CPU
    driver.advance(1)  # t=10: pvestatd pass enacts cores
    assert node.read_cgroup(101, "cpuset.cpus.effective") == "0-1\n"
    assert (node.cgroup_dir(101) / "ns" / "cpuset.cpus").read_text() == "0-1\n"
    driver.advance(10)
    assert usage(node, 101) == 10_000_000 + 18_000_000


def test_rebalance_skips_raw_cpuset_lines_and_spreads_containers(tmp_path: Path) -> None:
    node = make(
        tmp_path,
        ContainerSpec(101, "a", 2, 512),
        ContainerSpec(102, "b", 2, 512),
        ContainerSpec(103, "pinned", 2, 512),
        host_cores=4,
    )
    conf = node.conf_path(103)
    conf.write_text(conf.read_text() + "lxc.cgroup2.cpuset.cpus: 0-1\n")
    assert run(node, "set", "103", "-cores", "4").returncode == 0
    pvestatd.run_pass(node.root, 0.0)
    sets = {v: node.read_cgroup(v, "cpuset.cpus") for v in (101, 102, 103)}
    assert sets[103] == "0-1\n"  # a raw cpuset line: pvestatd leaves it alone
    assert sets[101] != sets[102]  # both started on 0-1: one moved to the idle CPUs
    assert run(node, "set", "101", "-cores", "1").returncode == 0
    pvestatd.run_pass(node.root, 10.0)
    assert len(node.read_cgroup(101, "cpuset.cpus.effective").strip().split("-")) == 1


# ---------------------------------------------------------------- 2. memory cut below usage


def test_a_memory_cut_below_usage_oom_kills_the_service_and_pct_exits_0(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "db1", 2, 2048, swap_mb=0))
    driver = WorkloadDriver(node, {101: steady(0.5, 900, 300)}, FakeClock().monotonic)
    driver.advance(1)
    assert int(node.read_cgroup(101, "memory.current")) == 1200 * MIB
    # a cut into the page cache only: the kernel reclaims, nothing is killed
    assert run(node, "set", "101", "-memory", "1000").returncode == 0
    assert int(node.read_cgroup(101, "memory.current")) == 1000 * MIB
    assert events(node, 101)["oom_kill"] == 0
    # a cut below the anon memory: the biggest process is OOM-killed, pct still exits 0
    res = run(node, "set", "101", "-memory", "512")
    assert (res.returncode, res.stderr) == (0, "")
    ev = events(node, 101)
    assert (ev["oom"], ev["oom_kill"]) == (1, 1)
    assert int(node.read_cgroup(101, "memory.current")) <= 512 * MIB
    assert len(node.oom_kills()) == 1 and "Killed process" in node.oom_kills()[0]
    driver.advance(1)
    assert driver.kills == {101: 1}  # the workload saw its service die
    anon = int(node.read_cgroup(101, "memory.stat").split("\n")[0].split()[1])
    assert anon < 100 * MIB  # the service is restarting
    driver.advance(RESTART_S)
    driver.advance(1)  # back, grows to 900 MB again: killed again
    assert driver.kills == {101: 2}
    assert events(node, 101)["oom_kill"] == 2


# ---------------------------------------------------------------- 3, 4. pvesh figures


def test_pvesh_cpu_is_a_fraction_of_cores_or_cpulimit_and_starts_at_0(tmp_path: Path) -> None:
    node = make(
        tmp_path,
        ContainerSpec(101, "capped", 4, 1024, cpulimit=1.0),
        ContainerSpec(102, "limit-only", 1, 1024, cpulimit=1.5),
    )
    conf = node.conf_path(102)
    conf.write_text(conf.read_text().replace("cores: 1\n", ""))  # only cpulimit
    driver = WorkloadDriver(node, {101: steady(3.0, 200), 102: steady(3.0, 200, 100)}, FakeClock().monotonic)
    before = pvesh(node)
    assert before[101]["status"] == "unknown" and "cpu" not in before[101]  # pvestatd never ran
    driver.advance(10)  # first pass: no previous reading, cpu 0
    first = pvesh(node)
    assert (first[101]["cpu"], first[101]["maxcpu"]) == (0, 4)
    assert first[102]["maxcpu"] == 1.5
    assert first[102]["mem"] == 200 * MIB  # page cache left out
    driver.advance(5)
    assert pvesh(node) == first  # nothing new until the next pass
    driver.advance(5)
    second = pvesh(node)
    assert second[101]["cpu"] == pytest.approx(0.25)  # cpulimit 1 of cores 4: the GUI shows 25 %
    assert second[102]["cpu"] == pytest.approx(1.0)


# ---------------------------------------------------------------- 5. failed hotplug, PVE 7 and 8


def test_pve7_failed_hotplug_leaves_the_key_pending_and_fails_400(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    settings.configure(node.root, pve_version=7)
    faults.inject(node.root, 101, hotplug_fail_option="memory")
    res = run(node, "set", "101", "-memory", "2048", "-cores", "3")
    assert res.returncode == 255
    assert res.stderr.startswith(
        "400 Parameter verification failed.\n"
        "memory: unable to hotplug memory: unable to write '/sys/fs/cgroup/lxc/101/memory.max'"
        " - Device or resource busy\n"
    )
    text = node.conf_path(101).read_text()
    assert "cores: 3\n" in text  # the fast-plug part went through
    assert text.endswith("\n[pve:pending]\nmemory: 2048\n")
    assert node.read_cgroup(101, "memory.max") == f"{1024 * MIB}\n"
    assert "memory: 2048\n" in run(node, "config", "101").stdout  # pending merged
    assert "memory: 1024\n" in run(node, "config", "101", "--current").stdout
    # the next set is judged against the current section and clears the pending key
    assert run(node, "set", "101", "-memory", "1536").returncode == 0
    assert "[pve:pending]" not in node.conf_path(101).read_text()
    assert node.read_conf(101)["memory"] == "1536"


def test_pve8_failed_hotplug_writes_nothing(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    before = node.conf_path(101).read_text()
    faults.inject(node.root, 101, hotplug_fail_option="memory", hotplug_fail_message="boom\n")
    res = run(node, "set", "101", "-memory", "2048", "-cores", "3")
    assert res.returncode == 255
    assert res.stderr.startswith(
        "400 Parameter verification failed.\nmemory: unable to hotplug memory: boom\n"
    )
    assert node.conf_path(101).read_text() == before
    assert faults.pending(node.root) == {}


# ---------------------------------------------------------------- 6. the smaller ones


def test_swap_defaults_to_0_and_cpuunits_is_clamped(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    conf = node.conf_path(101)
    conf.write_text(conf.read_text().replace("swap: 512\n", ""))
    assert run(node, "stop", "101").returncode == 0
    assert run(node, "start", "101").returncode == 0
    assert node.read_cgroup(101, "memory.swap.max") == "0\n"
    assert run(node, "set", "101", "-cpuunits", "50000").returncode == 0
    assert node.read_conf(101)["cpuunits"] == "10000"
    assert node.read_cgroup(101, "cpu.weight") == "10000\n"


def test_status_verbose_has_no_cpu_line_and_mem_leaves_cache_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    conf = node.conf_path(101)
    conf.write_text(conf.read_text().replace("swap: 512\n", ""))
    WorkloadDriver(node, {101: steady(0.5, 300, 100)}, FakeClock().monotonic).advance(1)
    assert pct.main(["--root", str(node.root), "status", "101", "--verbose"]) == 0
    lines = capsys.readouterr().out.splitlines()
    keys = dict(line.split(": ", 1) for line in lines)
    assert "cpu" not in keys and keys["cpus"] == "2"
    assert keys["mem"] == str(300 * MIB)
    assert keys["maxswap"] == "0"
    assert "pid" in keys


def test_a_die_exits_255_unless_errno_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    assert run(node, "set", "999", "-cores", "2").returncode == 255
    assert run(node, "start", "101").returncode == 255
    # a config lock timeout dies while $! still holds the interrupted flock's EINTR
    short = functools.partial(locking.config_lock, timeout=0.1)
    monkeypatch.setattr(locking, "config_lock", lambda root, vmid: short(root, vmid))
    held = locking.try_config_lock(str(node.root), 101)
    try:
        code = pct.main(["--root", str(node.root), "set", "101", "-cores", "3"])
    finally:
        assert held is not None
        os.close(held)
    err = capsys.readouterr().err
    assert (code, err) == (4, "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n")
