"""The pvesh source: Proxmox's /cluster/resources JSON, one call per cycle."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from test_collector_v2tree import V2Tree

from services.collector.cycle import Collector
from services.collector.pvesh_format import parse_cluster_resources
from services.collector.sampling import SamplingSettings
from services.collector.sources.base import SourceError
from services.collector.sources.pvesh import PveshSource
from shared.clock import FakeClock
from shared.models import NodeSample

FIXTURE = Path(__file__).parents[1] / "fixtures" / "pvesh_cluster_resources_vm.json"


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


def collect(source: PveshSource) -> NodeSample:
    clock = FakeClock()
    collector = Collector(source, node="pve1", interval_s=10, settings=SamplingSettings())
    return collector.collect(clock.now(), clock.monotonic()).sample


def test_only_this_nodes_containers_are_kept_without_vms_and_templates() -> None:
    containers, _ = parse_cluster_resources(FIXTURE.read_text(), "pve1")
    assert sorted(c.vmid for c in containers) == [101, 102, 103, 104]


def test_cpu_is_a_fraction_of_maxcpu_and_memory_comes_in_bytes(tmp_path: Path) -> None:
    source = PveshSource("pve1", V2Tree(tmp_path).root, binary=fake_pvesh(tmp_path, f"cat {FIXTURE}\n"))
    sample = collect(source)
    web = next(c for c in sample.containers if c.vmid == 101)
    assert web.cpu_pct == pytest.approx(45.2, abs=0.1)
    assert (web.cores, web.memory_mb) == (2, 2048)
    assert web.memory_pct == pytest.approx(25.0, abs=0.1)
    assert web.memory_used_mb == pytest.approx(512.0)
    assert web.running_for_s == 7260  # Proxmox's uptime: the collector need not watch it start
    assert (web.hostname, web.tags) == ("web1", ("prod", "web"))
    assert sample.source == "pvesh"


def test_pvesh_readings_are_sanity_clamped_and_gaps_are_not_reported(tmp_path: Path) -> None:
    source = PveshSource("pve1", V2Tree(tmp_path).root, binary=fake_pvesh(tmp_path, f"cat {FIXTURE}\n"))
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
    tree = V2Tree(tmp_path, cpus="0-7", memory_kb=8 * 1024 * 1024)
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
