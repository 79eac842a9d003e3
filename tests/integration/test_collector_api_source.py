"""The collector's API source and its file source read one simulated node alike."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pve_api import serve_api

from services.collector.raw import RawNode
from services.collector.sources.api import ApiSource
from services.collector.sources.base import SourceError
from services.collector.sources.cgroup import CgroupSource
from shared.proxmox_api import ProxmoxApi
from simnode import access
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import LoadProfile, Phase, WorkloadDriver

pytestmark = pytest.mark.integration
AUDITOR = ("VM.Audit", "Sys.Audit")  # the PVEAuditor privileges the source needs


def node_with_variety(root: Path) -> tuple[SimNode, WorkloadDriver]:
    sim = build_node(
        root, node_name="pve1", host_cores=8, host_memory_mb=16384,
        containers=[
            ContainerSpec(101, "web1", 2, 1024, tags="web;prod"),
            ContainerSpec(102, "idle", 1, 512, running=False),
            ContainerSpec(103, "db1", 4, 2048, lock="backup"),
            ContainerSpec(104, "nocores", 2, 768, cpulimit=1.5),
        ],
    )  # fmt: skip
    # 104 loses its cores line: it may use every host CPU, and neither source may invent a count.
    subprocess.run([str(sim.pct_path), "set", "104", "-delete", "cores"], check=True, capture_output=True)
    profile = LoadProfile((Phase(600, 0.8, 300, 50),))
    clock = [0.0]
    driver = WorkloadDriver(sim, {101: profile, 103: profile, 104: profile}, lambda: clock[0])
    clock[0] = 5.0
    driver.advance(5.0)
    return sim, driver


def summary(raw: RawNode) -> dict[int, tuple[object, ...]]:
    return {
        c.vmid: (c.running, c.conf.cores, c.conf.memory_mb, c.conf.hostname, c.conf.tags, c.conf.lock)
        for c in raw.containers
    }


def test_the_api_source_reads_the_same_containers_as_the_file_source(tmp_path: Path) -> None:
    sim, _ = node_with_variety(tmp_path / "node")
    with serve_api(sim, tmp_path / "tls") as pve:
        secret = pve.add_token("autoscale@pve!collector", AUDITOR)
        api = ProxmoxApi(pve.endpoint("autoscale@pve!collector", secret))
        by_api = ApiSource("pve1", api).read()
    by_files = CgroupSource(tmp_path / "node", label="sim").read()
    assert summary(by_api) == summary(by_files)
    assert summary(by_api)[104][1] is None  # no cores line: no cores, not the host's 8
    assert (by_api.host_cores, by_api.host_memory_mb) == (by_files.host_cores, by_files.host_memory_mb)
    assert by_api.skipped == {} == by_files.skipped
    files_used = {
        c.vmid: c.memory_current - c.memory_file  # type: ignore[operator]
        for c in by_files.containers if c.running
    }  # fmt: skip
    api_used = {c.vmid: c.memory_current for c in by_api.containers if c.running}
    assert api_used == files_used and all(c.memory_cache_excluded for c in by_api.containers if c.running)


def test_a_token_that_may_see_only_some_containers_gets_only_those(tmp_path: Path) -> None:
    sim, _ = node_with_variety(tmp_path / "node")
    with serve_api(sim, tmp_path / "tls") as pve:
        secret = pve.add_token("autoscale@pve!collector", ("Sys.Audit",))
        narrow = access.add_token(sim.root, "web@pve!collector", ("VM.Audit", "Sys.Audit"), path="/vms/101")
        none = ApiSource("pve1", ProxmoxApi(pve.endpoint("autoscale@pve!collector", secret))).read()
        with pytest.raises(SourceError, match=r"403 Permission check failed \(/nodes/pve1, Sys.Audit\)"):
            ApiSource("pve1", ProxmoxApi(pve.endpoint("web@pve!collector", narrow))).read()
    assert none.containers == []  # without VM.Audit the list is filtered, not refused


def test_a_container_without_fresh_figures_is_left_out_with_the_reason(tmp_path: Path) -> None:
    sim, _ = node_with_variety(tmp_path / "node")
    with serve_api(sim, tmp_path / "tls") as pve:
        pve.double.stale_vmids.add(103)
        raw = ApiSource("pve1", ProxmoxApi(pve.endpoint())).read()
    assert sorted(c.vmid for c in raw.containers) == [101, 102, 104]
    assert "status unknown" in raw.skipped["vmid 103"]


def test_an_unreachable_api_is_a_source_error_naming_the_endpoint(tmp_path: Path) -> None:
    sim, _ = node_with_variety(tmp_path / "node")
    with serve_api(sim, tmp_path / "tls") as pve:
        endpoint = pve.endpoint()
    with pytest.raises(SourceError, match=r"Proxmox API https://127\.0\.0\.1:\d+ as autoscale@pve!actuator"):
        ApiSource("pve1", ProxmoxApi(endpoint), timeout_s=2).read()
