"""The group workload: a group's total load spread over its running, booted members, on
one node or across the nodes of a cluster; a started clone boots before it serves load."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from simnode import settings
from simnode.scenario import load_scenario, scenario_path
from simnode.tree import ContainerSpec, NodeSpec, SimCluster, SimNode, build_cluster
from simnode.workload import GroupLoad, LoadProfile, Phase, WorkloadDriver

GROUP = GroupLoad("app", "app", LoadProfile((Phase(3600, 3.0, 300, 40),)))


@pytest.fixture
def cluster(tmp_path: Path) -> SimCluster:
    built = build_cluster(
        tmp_path / "c",
        [
            NodeSpec("pve1", 8, 16384, (ContainerSpec(301, "app1", 4, 1024, tags="app"),)),
            NodeSpec("pve2", 8, 16384, (ContainerSpec(401, "other", 1, 512, tags="db"),)),
        ],
        storage_cfg="lvmthin: local-lvm\n\tthinpool data\n\tvgname pve\n\tcontent rootdir\n\n"
        "rbd: ceph\n\tpool vms\n\tcontent rootdir\n",
    )
    for node in built.nodes.values():
        settings.configure(node.root, boot_s=4.0)
    return built


def pct(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([str(node.pct_path), *args], capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 0, res.stderr
    return res


def usage_s(node: SimNode, vmid: int) -> float:
    for line in node.read_cgroup(vmid, "cpu.stat").splitlines():
        if line.startswith("usage_usec "):
            return int(line.split()[1]) / 1e6
    raise AssertionError("no usage_usec")


def test_a_group_spreads_its_load_and_a_clone_boots_first(cluster: SimCluster) -> None:
    pve1, pve2 = cluster.node("pve1"), cluster.node("pve2")
    driver = WorkloadDriver([pve1, pve2], {}, lambda: 0.0, groups=[GROUP])
    driver.advance(10.0)
    assert usage_s(pve1, 301) == pytest.approx(30.0)  # 3 cores of load on the only member
    assert usage_s(pve2, 401) == 0.0  # not in the group, no profile: idle
    # a clone on the other node (shared storage), tagged like its source: a new member
    pct(pve1, "snapshot", "301", "base")
    pct(pve1, "clone", "301", "302", "--snapname", "base", "--target", "pve2", "--storage", "ceph")
    pct(pve2, "start", "302")
    driver.advance(2.0)  # booting: no share yet, the source carries it all
    assert usage_s(pve2, 302) == 0.0
    assert driver.shares == {301: 3.0}  # a booting clone is no member yet
    assert not driver.booted(302)
    driver.advance(2.0)
    assert driver.booted(302)
    before = usage_s(pve1, 301), usage_s(pve2, 302)
    driver.advance(10.0)
    assert usage_s(pve1, 301) - before[0] == pytest.approx(15.0)  # 1.5 cores each now
    assert usage_s(pve2, 302) - before[1] == pytest.approx(15.0)
    anon = int(pve2.read_cgroup(302, "memory.stat").split("anon ")[1].split()[0])
    assert anon == 300 * 1024 * 1024  # memory is per member, not split
    pct(pve2, "stop", "302")  # scale-in: the survivor carries the whole load again
    before_src = usage_s(pve1, 301)
    driver.advance(10.0)
    assert usage_s(pve1, 301) - before_src == pytest.approx(30.0)


def test_a_member_is_capped_by_its_own_cores(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    heavy = GroupLoad("app", "app", LoadProfile((Phase(3600, 10.0, 300, 0),)))
    driver = WorkloadDriver(pve1, {}, lambda: 0.0, groups=[heavy])
    driver.advance(5.0)
    assert usage_s(pve1, 301) == pytest.approx(20.0)  # 4 cores of the 10 wanted


def test_a_restart_boots_again(cluster: SimCluster) -> None:
    pve1 = cluster.node("pve1")
    driver = WorkloadDriver(pve1, {}, lambda: 0.0, groups=[GROUP])
    driver.advance(1.0)
    pct(pve1, "stop", "301")
    pct(pve1, "start", "301")
    driver.advance(3.0)
    assert usage_s(pve1, 301) == 0.0
    assert not driver.booted(301)
    driver.advance(1.0)
    driver.advance(1.0)
    assert usage_s(pve1, 301) == pytest.approx(3.0)


def test_the_horizontal_scenario_builds_a_group(tmp_path: Path) -> None:
    scenario = load_scenario(scenario_path("horizontal"))
    node = scenario.build(tmp_path / "h")
    assert settings.boot_s(node.root) > 0 and settings.clone_s(node.root) > 0
    assert [g.name for g in scenario.groups] == ["app"]
    source = scenario.containers[0]
    assert source.vmid not in scenario.profiles and "app" in (source.tags or "")
    phases = scenario.groups[0].profile.phases
    assert phases[1].cpu_cores_demand > source.cores > phases[0].cpu_cores_demand  # rises, then ends
    assert phases[-1].cpu_cores_demand < source.cores / 4  # the load ends: the group can shrink back
