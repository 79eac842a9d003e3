"""The pvesh source: Proxmox's /cluster/resources JSON, one call per cycle."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from test_collector_v2tree import V2Tree

from services.collector.cycle import Collector
from services.collector.pvesh_format import parse_cluster_resources
from services.collector.sampling import SamplingSettings
from services.collector.sources.base import SourceError
from services.collector.sources.pvesh import PveshSource
from shared.clock import FakeClock
from shared.models import NodeSample
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import LoadProfile, Phase, WorkloadDriver

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pvesh_cluster_resources_vm.json"


def steady(cpu: float) -> LoadProfile:
    return LoadProfile((Phase(3600, cpu, 200, 50),))


def fake_pvesh(tmp_path: Path, body: str) -> str:
    """An executable standing in for pvesh that insists on the exact arguments."""
    script = tmp_path / "pvesh"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$*" != "get /cluster/resources --type vm --output-format json" ]; then\n'
        '  echo "unexpected arguments: $*" >&2; exit 255\nfi\n' + body
    )
    script.chmod(0o755)
    return str(script)


def fixture_tree(tmp_path: Path, **kwargs: Any) -> V2Tree:
    """The node the fixture describes: its config files (maxcpu is not cores)."""
    tree = V2Tree(tmp_path, **kwargs)
    confs = {
        101: "cores: 2\nhostname: web1\nmemory: 2048\ntags: prod;web\n",
        102: "cores: 1\nhostname: batch\nmemory: 512\n",
        103: "cores: 4\nhostname: db1\nlock: backup\nmemory: 4096\n",
        104: "cores: 2\nhostname: fresh\nmemory: 1024\n",
    }
    for vmid, text in confs.items():
        tree.conf_path(vmid).write_text(text)
    return tree


def collect(source: PveshSource) -> NodeSample:
    clock = FakeClock()
    collector = Collector(source, node="pve1", interval_s=10, settings=SamplingSettings())
    return collector.collect(clock.now(), clock.monotonic()).sample


def test_only_this_nodes_containers_are_kept_without_vms_and_templates() -> None:
    containers, _ = parse_cluster_resources(FIXTURE.read_text(), "pve1")
    assert sorted(c.vmid for c in containers) == [101, 102, 103, 104]


def test_cpu_is_a_fraction_of_maxcpu_and_memory_comes_in_bytes(tmp_path: Path) -> None:
    source = PveshSource("pve1", fixture_tree(tmp_path).root, binary=fake_pvesh(tmp_path, f"cat {FIXTURE}\n"))
    sample = collect(source)
    web = next(c for c in sample.containers if c.vmid == 101)
    assert web.cpu_pct == pytest.approx(45.2, abs=0.1)
    assert web.cpu_pct_proxmox == pytest.approx(45.2, abs=0.1)
    assert (web.cores, web.memory_mb) == (2, 2048)
    assert web.memory_pct == pytest.approx(25.0, abs=0.1)
    assert web.memory_used_mb == pytest.approx(512.0)
    assert web.running_for_s == 7260  # Proxmox's uptime: the collector need not watch it start
    assert (web.hostname, web.tags) == ("web1", ("prod", "web"))
    assert sample.source == "pvesh"


def test_pvesh_readings_are_sanity_clamped_and_gaps_are_not_reported(tmp_path: Path) -> None:
    source = PveshSource("pve1", fixture_tree(tmp_path).root, binary=fake_pvesh(tmp_path, f"cat {FIXTURE}\n"))
    containers = {c.vmid: c for c in collect(source).containers}
    assert containers[103].cpu_pct == 100.0  # 1.3 of its CPUs: clamped
    assert containers[103].memory_pct == 100.0
    assert containers[103].lock == "backup"
    assert (containers[104].cpu_pct, containers[104].cpu_missing) == (None, "not-reported")
    assert (containers[104].memory_pct, containers[104].memory_missing) == (None, "not-reported")
    assert containers[102].status == "stopped"


def test_an_entry_that_cannot_be_sized_is_left_out_with_the_reason() -> None:
    _, skipped = parse_cluster_resources(FIXTURE.read_text(), "pve1")
    assert "maxmem" in skipped["vmid 105"]


def test_the_host_totals_still_come_from_the_node_files(tmp_path: Path) -> None:
    tree = fixture_tree(tmp_path, cpus="0-7", memory_kb=8 * 1024 * 1024)
    source = PveshSource("pve1", tree.root, binary=fake_pvesh(tmp_path, f"cat {FIXTURE}\n"))
    host = collect(source).host
    assert (host.cores, host.memory_mb) == (8, 8192)
    assert host.allocated_cores_running == 2 + 4 + 2
    assert host.allocated_memory_mb_all == 2048 + 512 + 4096 + 1024


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("echo 'ipcc_send_rec[1] failed: Connection refused' >&2; exit 111\n", "exited with 111"),
        ("echo '{not json'\n", "not JSON"),
        ("echo '{\"data\": []}'\n", "expected a list"),
    ],
    ids=["pvesh fails", "not json", "not a list"],
)
def test_a_failing_or_garbled_pvesh_fails_the_cycle_with_a_clear_reason(
    tmp_path: Path, body: str, message: str
) -> None:
    source = PveshSource("pve1", V2Tree(tmp_path).root, binary=fake_pvesh(tmp_path, body))
    with pytest.raises(SourceError, match=message):
        source.read()


def test_a_hanging_pvesh_is_given_up_after_its_timeout(tmp_path: Path) -> None:
    binary = fake_pvesh(tmp_path, f"exec {shlex.quote(sys.executable)} -c 'import time; time.sleep(5)'\n")
    source = PveshSource("pve1", V2Tree(tmp_path).root, binary=binary, timeout_s=0.3)
    with pytest.raises(SourceError, match="did not answer"):
        source.read()


def test_the_pvesh_command_is_an_argument_list() -> None:
    assert PveshSource("pve1", Path("/")).command() == [
        "pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json",
    ]  # fmt: skip


# ---------------------------------------------------------------- against the simulated node


def sim_node(tmp_path: Path) -> SimNode:
    node = build_node(
        tmp_path / "node",
        node_name="pve1",
        host_cores=16,
        host_memory_mb=32768,
        containers=[ContainerSpec(101, "web1", 2, 1024), ContainerSpec(102, "capped", 1, 1024, cpulimit=1.5)],
    )
    conf = node.conf_path(102)
    conf.write_text(conf.read_text().replace("cores: 1\n", ""))  # only `cpulimit: 1.5`
    return node


def test_a_cpulimit_only_container_gets_its_cores_from_the_config_not_maxcpu(tmp_path: Path) -> None:
    node = sim_node(tmp_path)
    driver = WorkloadDriver(node, {101: steady(1.0), 102: steady(3.0)}, FakeClock().monotonic)
    collector = Collector(PveshSource("pve1", node.root, binary=str(node.pvesh_path)), node="pve1",
                          interval_s=10, settings=SamplingSettings())  # fmt: skip
    clock = FakeClock()
    first = collector.collect(clock.now(), clock.monotonic())
    assert set(first.sample.containers) == set()  # pvestatd never ran: status unknown
    assert "status unknown" in first.skipped["vmid 102"]
    driver.advance(10)  # pvestatd's first pass after the start: cpu 0 means "no reading yet"
    clock.advance(10)
    reading = {c.vmid: c for c in collector.collect(clock.now(), clock.monotonic()).sample.containers}
    assert (reading[102].cpu_pct, reading[102].cpu_missing) == (None, "first-sample")
    driver.advance(10)
    clock.advance(10)
    reading = {c.vmid: c for c in collector.collect(clock.now(), clock.monotonic()).sample.containers}
    capped = reading[102]
    # no `cores` line: Proxmox lets it use every host CPU, limited by the quota (maxcpu 1.5)
    assert (capped.cores, capped.cpulimit, capped.cores_missing) == (16, 1.5, None)
    assert capped.cpu_pct == pytest.approx(100.0)  # 1.5 of the 1.5 it may use
    assert capped.cpu_pct_proxmox == pytest.approx(100.0)
    assert (reading[101].cores, reading[101].cpu_pct) == (2, pytest.approx(50.0))


def test_a_container_whose_config_cannot_be_read_has_unknown_cores(tmp_path: Path) -> None:
    node = sim_node(tmp_path)
    WorkloadDriver(node, {101: steady(1.0)}, FakeClock().monotonic).advance(10)
    saved = node.conf_path(101).read_text()
    node.conf_path(101).unlink()
    node.conf_path(101).mkdir()  # something that is not a config file where it should be
    containers = PveshSource("pve1", node.root, binary=str(node.pvesh_path)).read().containers
    node.conf_path(101).rmdir()
    node.conf_path(101).write_text(saved)
    unknown = next(c for c in containers if c.vmid == 101)
    assert unknown.cores_missing == "unreadable"
    assert unknown.conf.cores is None  # never ceil(maxcpu)
