"""Fault injection on `pct set`: counted down atomically, then normal behaviour returns."""

from __future__ import annotations

import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simnode import faults
from simnode.tree import ContainerSpec, SimNode, build_node


@pytest.fixture
def node(tmp_path: Path) -> SimNode:
    return build_node(
        tmp_path / "node",
        node_name="pve1",
        host_cores=8,
        host_memory_mb=16384,
        containers=[ContainerSpec(101, "web1", 2, 1024), ContainerSpec(102, "web2", 2, 1024)],
    )


def run_pct(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(node.pct_path), *args], capture_output=True, text=True, check=False, timeout=30
    )


def test_locked_times_counts_down_then_set_succeeds(node: SimNode) -> None:
    faults.inject(node.root, 101, locked_times=2)
    for _ in range(2):
        res = run_pct(node, "set", "101", "-cores", "3")
        assert (res.returncode, res.stderr) == (255, "CT is locked (backup)\n")
        assert node.read_conf(101)["cores"] == "2"
    res = run_pct(node, "set", "101", "-cores", "3")
    assert (res.returncode, res.stderr) == (0, "")
    assert node.read_conf(101)["cores"] == "3"
    assert faults.pending(node.root) == {}


def test_fail_message_is_printed_with_exit_255(node: SimNode) -> None:
    faults.inject(node.root, 101, fail_message="command 'lxc-cgroup' failed: exit code 1", fail_times=1)
    res = run_pct(node, "set", "101", "-memory", "2048")
    assert (res.returncode, res.stderr) == (255, "command 'lxc-cgroup' failed: exit code 1\n")
    assert run_pct(node, "set", "101", "-memory", "2048").returncode == 0


def test_faults_only_hit_their_container(node: SimNode) -> None:
    faults.inject(node.root, 101, locked_times=1)
    assert run_pct(node, "set", "102", "-cores", "3").returncode == 0
    assert faults.pending(node.root) == {"101": {"locked_times": 1, "lock": "backup"}}


def test_hang_holds_the_config_lock(node: SimNode) -> None:
    faults.inject(node.root, 101, hang_seconds=1.0)
    start = time.monotonic()
    hung = subprocess.Popen([str(node.pct_path), "set", "101", "-cores", "3"])
    deadline = time.monotonic() + 20
    while faults.pending(node.root) and time.monotonic() < deadline:
        time.sleep(0.01)  # the unit is consumed once the hung call holds the CT lock
    assert faults.pending(node.root) == {}
    second = run_pct(node, "set", "101", "-cores", "4")  # waits for the hung one
    assert hung.wait(timeout=30) == 0
    assert second.returncode == 0
    assert time.monotonic() - start >= 1.0
    assert node.read_conf(101)["cores"] == "4"


def test_concurrent_sets_consume_each_unit_once(node: SimNode) -> None:
    faults.inject(node.root, 101, locked_times=3)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: run_pct(node, "set", "101", "-cores", "3"), range(6)))
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 0, 0, 255, 255, 255]
    assert len(node.pct_calls()) == 6


def test_clear_removes_faults(node: SimNode) -> None:
    faults.inject(node.root, 101, locked_times=5)
    faults.inject(node.root, 102, fail_message="boom")
    faults.clear(node.root, 101)
    assert list(faults.pending(node.root)) == ["102"]
    faults.clear(node.root)
    assert faults.pending(node.root) == {}
