"""The workload driver: counters follow demand, capped by the container's current config."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from simnode.scenario import load_scenario, parse_scenario, scenario_path
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import LoadProfile, Phase, WorkloadDriver

MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make(tmp_path: Path, *specs: ContainerSpec) -> SimNode:
    return build_node(
        tmp_path / "node", node_name="pve1", host_cores=16, host_memory_mb=32768, containers=list(specs)
    )


def cpu_stat(node: SimNode, vmid: int) -> dict[str, int]:
    return {k: int(v) for k, v in (ln.split(" ") for ln in node.read_cgroup(vmid, "cpu.stat").splitlines())}


def mem_stat(node: SimNode, vmid: int) -> dict[str, int]:
    return {
        k: int(v) for k, v in (ln.split(" ") for ln in node.read_cgroup(vmid, "memory.stat").splitlines())
    }


def steady(cpu: float, mem: int, cache: int = 0) -> LoadProfile:
    return LoadProfile((Phase(3600, cpu, mem, cache),))


def test_cpu_usage_never_exceeds_cores(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    driver = WorkloadDriver(node, {101: steady(3.5, 100)}, Clock())
    driver.advance(10)
    stat = cpu_stat(node, 101)
    assert stat["usage_usec"] == 20_000_000
    assert stat["user_usec"] + stat["system_usec"] == stat["usage_usec"]


def test_cpu_below_cores_is_the_demand(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 4, 1024))
    driver = WorkloadDriver(node, {101: steady(0.25, 100)}, Clock())
    for _ in range(40):
        driver.advance(0.25)
    assert cpu_stat(node, 101)["usage_usec"] == 2_500_000


def test_cpulimit_caps_below_cores(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 4, 1024, cpulimit=1.5))
    WorkloadDriver(node, {101: steady(3.0, 100)}, Clock()).advance(2)
    assert cpu_stat(node, 101)["usage_usec"] == 3_000_000


def test_a_resize_with_pct_changes_the_next_advance(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    driver = WorkloadDriver(node, {101: steady(3.5, 1500)}, Clock())
    driver.advance(10)
    assert node.read_cgroup(101, "memory.current") == f"{1024 * MIB}\n"
    res = subprocess.run(
        [str(node.pct_path), "set", "101", "-cores", "4", "-memory", "2048"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    driver.advance(10)
    # memory is hot-plugged at once; cores only rewrote the config: still 2 CPUs until
    # pvestatd's pass at the end of this advance enacts them
    assert cpu_stat(node, 101)["usage_usec"] == 20_000_000 + 20_000_000
    assert node.read_cgroup(101, "cpuset.cpus.effective") == "0-3\n"
    driver.advance(10)
    assert cpu_stat(node, 101)["usage_usec"] == 40_000_000 + 35_000_000
    assert node.read_cgroup(101, "memory.current") == f"{1500 * MIB}\n"
    assert node.read_cgroup(101, "memory.max") == f"{2048 * MIB}\n"


def test_memory_is_capped_at_the_configured_memory(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))  # swap 512
    WorkloadDriver(node, {101: steady(0.5, 1200, 300)}, Clock()).advance(1)
    assert node.read_cgroup(101, "memory.current") == f"{1024 * MIB}\n"
    stat = mem_stat(node, 101)
    assert stat["anon"] == 1024 * MIB and stat["file"] == 0  # cache reclaimed first
    assert node.read_cgroup(101, "memory.swap.current") == f"{176 * MIB}\n"
    events = node.read_cgroup(101, "memory.events")
    assert "high 1\n" in events and "max 1\n" in events


def test_page_cache_is_reported_as_file(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 2048))
    WorkloadDriver(node, {101: steady(0.5, 900, 100)}, Clock()).advance(1)
    assert node.read_cgroup(101, "memory.current") == f"{1000 * MIB}\n"
    stat = mem_stat(node, 101)
    assert (stat["anon"], stat["file"]) == (900 * MIB, 100 * MIB)
    assert stat["active_file"] + stat["inactive_file"] == 100 * MIB


def test_phases_hold_the_last_one_or_loop() -> None:
    held = LoadProfile((Phase(10, 1.0, 100), Phase(10, 2.0, 200)))
    assert held.phase_at(25)[0].cpu_cores_demand == 2.0
    assert held.cpu_seconds(5, 10, cap=8) == 5 * 1.0 + 5 * 2.0
    looped = LoadProfile((Phase(10, 1.0, 100), Phase(10, 2.0, 200)), loop=True)
    assert looped.phase_at(25)[0].cpu_cores_demand == 1.0


def test_stopped_containers_are_skipped(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024, running=False))
    WorkloadDriver(node, {101: steady(1.0, 100)}, Clock()).advance(5)
    assert not node.cgroup_dir(101).exists()


def test_cpu_pressure_shows_the_shortfall(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    WorkloadDriver(node, {101: steady(4.0, 100)}, Clock()).advance(10)
    some = node.read_cgroup(101, "cpu.pressure").splitlines()[0].split()
    assert some[0] == "some" and float(some[1].split("=")[1]) > 0
    assert some[4] == "total=5000000"  # half the demand waited for 10 s


def test_run_stops_at_a_deadline(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    clock = Clock()

    def sleep(s: float) -> None:
        clock.t += s

    WorkloadDriver(node, {101: steady(1.0, 100)}, clock).run(clock.t + 3.0, tick_s=0.5, sleep=sleep)
    assert cpu_stat(node, 101)["usage_usec"] == 3_000_000


def test_run_stops_on_an_event(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 1024))
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    WorkloadDriver(node, {101: steady(1.0, 100)}, Clock()).run(stop, tick_s=0.01)
    assert time.monotonic() - started < 1.0
    assert cpu_stat(node, 101)["usage_usec"] == 0  # stopped before its first tick


def test_meminfo_reflects_container_memory(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 2, 4096))
    WorkloadDriver(node, {101: steady(0.1, 2048, 512)}, Clock()).advance(1)
    lines = dict(
        (ln.split(":")[0], int(ln.split()[1]))
        for ln in (node.root / "proc" / "meminfo").read_text().splitlines()
    )
    assert lines["AnonPages"] == 2048 * 1024
    assert lines["MemFree"] < lines["MemTotal"] - 2048 * 1024


# ----------------------------------------------------------------------------- scenarios


def test_demo_scenario_has_the_promised_cases() -> None:
    scenario = load_scenario(scenario_path("demo"))
    specs = {c.vmid: c for c in scenario.containers}
    assert len(specs) >= 6 and {v // 100 for v in specs} == {1, 2}

    def demand(vmid: int) -> Phase:
        return scenario.profiles[vmid].phases[0]

    saturated = [v for v in specs if demand(v).cpu_cores_demand > specs[v].cores]
    pressured = [v for v in specs if demand(v).memory_mb_demand / specs[v].memory_mb > 0.9]
    idle_big = [
        v
        for v in specs
        if specs[v].cores >= 4
        and demand(v).cpu_cores_demand / specs[v].cores < 0.05
        and demand(v).memory_mb_demand / specs[v].memory_mb < 0.1
    ]
    steady_ones = [
        v
        for v in specs
        if 0.3 < demand(v).cpu_cores_demand / specs[v].cores < 0.7
        and 0.3 < demand(v).memory_mb_demand / specs[v].memory_mb < 0.7
    ]
    assert saturated and pressured and idle_big and steady_ones


def test_parse_scenario_rejects_missing_keys() -> None:
    with pytest.raises(ValueError, match="host_cores"):
        parse_scenario({"containers": [], "host_memory_mb": 1024})


def test_workload_cli_builds_and_runs(tmp_path: Path) -> None:
    profile = tmp_path / "p.json"
    profile.write_text(
        json.dumps(
            {
                "node": "pve9",
                "host_cores": 4,
                "host_memory_mb": 8192,
                "containers": [
                    {
                        "vmid": 300,
                        "hostname": "x",
                        "cores": 1,
                        "memory_mb": 512,
                        "profile": [{"duration_s": 60, "cpu": 2.0, "memory_mb": 100, "cache_mb": 10}],
                    }
                ],
            }
        )
    )
    root = tmp_path / "root"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "simnode.workload",
            "--root",
            str(root),
            "--profile",
            str(profile),
            "--tick",
            "0.1",
            "--duration",
            "0.5",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert res.returncode == 0, res.stderr
    node = SimNode.open(root)
    usage = cpu_stat(node, 300)["usage_usec"]
    assert 300_000 <= usage <= 1_000_000  # ~0.5 s at 1 core (capped from 2)
    assert node.read_cgroup(300, "memory.current") == f"{110 * MIB}\n"


def usage_per_tick(node: SimNode, driver: WorkloadDriver, ticks: int, tick_s: float = 0.5) -> list[int]:
    used = []
    for _ in range(ticks):
        before = cpu_stat(node, 101)["usage_usec"]
        driver.advance(tick_s)
        used.append(cpu_stat(node, 101)["usage_usec"] - before)
    return used


def test_noise_swings_the_demand_per_tick_around_the_profile(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 4, 1024))
    driver = WorkloadDriver(node, {101: steady(1.0, 100)}, Clock(), noise=0.4, seed=7)
    used = usage_per_tick(node, driver, 400)
    assert min(used) >= 0.6 * 500_000 - 1 and max(used) <= 1.4 * 500_000 + 1
    assert max(used) - min(used) > 0.5 * 500_000  # it really swings
    assert abs(sum(used) / len(used) - 500_000) < 0.05 * 500_000  # around the profile's demand


def test_noise_never_lets_a_container_use_more_than_its_cores(tmp_path: Path) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 1, 1024))
    driver = WorkloadDriver(node, {101: steady(0.9, 100)}, Clock(), noise=0.5, seed=1)
    assert max(usage_per_tick(node, driver, 100)) <= 500_000


def test_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        node = build_node(tmp_path / name, node_name="pve1", host_cores=16, host_memory_mb=32768,
                          containers=[ContainerSpec(101, "web1", 4, 1024)])  # fmt: skip
        driver = WorkloadDriver(node, {101: steady(1.0, 100)}, Clock(), noise=0.3, seed=42)
        runs.append(usage_per_tick(node, driver, 20))
    assert runs[0] == runs[1]


@pytest.mark.parametrize("noise", [-0.1, 1.0])
def test_noise_outside_0_to_1_is_refused(tmp_path: Path, noise: float) -> None:
    node = make(tmp_path, ContainerSpec(101, "web1", 4, 1024))
    with pytest.raises(ValueError, match="noise"):
        WorkloadDriver(node, {101: steady(1.0, 100)}, Clock(), noise=noise)
