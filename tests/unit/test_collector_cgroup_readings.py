"""Readings from v2-shaped trees with known counters, through the real cgroup source."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_collector_v2tree import V2Tree

from services.collector.cycle import Collector, CycleResult
from services.collector.sampling import SamplingSettings
from services.collector.sources.base import SourceError
from services.collector.sources.cgroup import CgroupSource
from shared.clock import FakeClock
from shared.models import ContainerReading

SECOND = 1_000_000  # usage_usec per CPU-second


class Harness:
    def __init__(self, tree: V2Tree, *, exclude_cache: bool = True, ignore: frozenset[int] = frozenset()):
        self.tree = tree
        self.clock = FakeClock()
        self.collector = Collector(
            CgroupSource(tree.root, label="sim"),
            node="pve1",
            interval_s=10,
            settings=SamplingSettings(memory_exclude_cache=exclude_cache, ignore=ignore),
        )

    def cycle(self, advance_s: float = 0.0) -> CycleResult:
        self.clock.advance(advance_s)
        return self.collector.collect(self.clock.now(), self.clock.monotonic())

    def reading(self, vmid: int, advance_s: float = 0.0) -> ContainerReading:
        return by_vmid(self.cycle(advance_s), vmid)


def by_vmid(result: CycleResult, vmid: int) -> ContainerReading:
    return next(c for c in result.sample.containers if c.vmid == vmid)


@pytest.fixture
def tree(tmp_path: Path) -> V2Tree:
    return V2Tree(tmp_path / "node")


def test_cpu_percent_is_cpu_time_over_elapsed_time_and_cores(tree: V2Tree) -> None:
    tree.container(101, cores=4, usage_usec=5 * SECOND)
    harness = Harness(tree)
    harness.cycle()
    tree.add_usage(101, 13 * SECOND)  # 13 CPU-seconds in 10 s on 4 cores
    reading = harness.reading(101, advance_s=10)
    assert reading.cpu_pct == pytest.approx(32.5, abs=0.1)
    assert reading.cpu_missing is None


def test_cpu_percent_uses_cpulimit_when_it_is_below_the_cores(tree: V2Tree) -> None:
    tree.container(101, cores=4, extra_conf="cpulimit: 1.5\n")
    harness = Harness(tree)
    harness.cycle()
    tree.add_usage(101, 12 * SECOND)  # 1.2 CPUs busy out of the 1.5 allowed
    reading = harness.reading(101, advance_s=10)
    assert reading.cpu_pct == pytest.approx(80.0, abs=0.1)
    assert reading.cpulimit == 1.5


def test_cpu_percent_is_clamped_to_100_when_the_counter_runs_slightly_ahead(tree: V2Tree) -> None:
    tree.container(101, cores=1)
    harness = Harness(tree)
    harness.cycle()
    tree.add_usage(101, 10_500_000)  # 1.05 CPUs on a 1-core container: scheduling jitter
    assert harness.reading(101, advance_s=10).cpu_pct == 100.0


def test_a_counter_faster_than_the_whole_host_is_garbage_not_100_percent(tree: V2Tree) -> None:
    tree.container(101, cores=1)
    harness = Harness(tree)
    harness.cycle()
    tree.add_usage(101, 500 * SECOND)  # 50 CPUs busy on a 16-CPU host: impossible
    reading = harness.reading(101, advance_s=10)
    assert (reading.cpu_pct, reading.cpu_missing) == (None, "garbage")


def test_the_first_cycle_reports_cpu_as_missing_first_sample_never_zero(tree: V2Tree) -> None:
    tree.container(101, usage_usec=7 * SECOND, used_mb=256)
    reading = Harness(tree).reading(101)
    assert reading.cpu_pct is None
    assert reading.cpu_missing == "first-sample"
    assert reading.memory_pct == pytest.approx(25.0, abs=0.1)  # memory needs no history
    assert reading.running_for_s == 0.0


def test_memory_percent_leaves_the_page_cache_out_by_default(tree: V2Tree) -> None:
    tree.container(101, memory=2048, used_mb=512, cache_mb=1024)
    reading = Harness(tree).reading(101)
    assert reading.memory_pct == pytest.approx(25.0, abs=0.1)
    assert reading.memory_used_mb == pytest.approx(512.0, abs=0.1)


def test_memory_percent_counts_the_page_cache_when_exclusion_is_off(tree: V2Tree) -> None:
    tree.container(101, memory=2048, used_mb=512, cache_mb=1024)
    reading = Harness(tree, exclude_cache=False).reading(101)
    assert reading.memory_pct == pytest.approx(75.0, abs=0.1)


def test_memory_without_a_limit_is_missing_no_limit_with_the_usage_still_reported(tree: V2Tree) -> None:
    tree.container(101, used_mb=300)
    tree.write(101, "memory.max", "max\n")
    reading = Harness(tree).reading(101)
    assert (reading.memory_pct, reading.memory_missing) == (None, "no-limit")
    assert reading.memory_used_mb == pytest.approx(300.0, abs=0.1)


@pytest.mark.parametrize(
    ("file", "content", "field", "reason"),
    [
        ("cpu.stat", "", "cpu", "garbage"),
        ("cpu.stat", "usage_usec lots\n", "cpu", "garbage"),
        ("cpu.stat", "user_usec 5\n", "cpu", "garbage"),
        ("memory.current", "", "memory", "garbage"),
        ("memory.current", "-5\n", "memory", "garbage"),
        ("memory.current", "twelve\n", "memory", "garbage"),
        ("memory.max", "0\n", "memory", "garbage"),
        ("memory.max", "1.5G\n", "memory", "garbage"),
        ("memory.stat", "anon 5\n", "memory", "garbage"),
    ],
    ids=lambda value: str(value).strip() or "empty",
)
def test_garbage_in_a_file_gives_a_missing_reading_with_its_reason(
    tree: V2Tree, file: str, content: str, field: str, reason: str
) -> None:
    tree.container(101)
    harness = Harness(tree)
    harness.cycle()
    tree.write(101, file, content)
    reading = harness.reading(101, advance_s=10)
    assert getattr(reading, f"{field}_pct") is None
    assert getattr(reading, f"{field}_missing") == reason


@pytest.mark.parametrize(
    ("file", "field"),
    [("cpu.stat", "cpu"), ("memory.current", "memory"), ("memory.max", "memory"), ("memory.stat", "memory")],
)
def test_a_missing_file_gives_a_missing_reading_marked_unreadable(
    tree: V2Tree, file: str, field: str
) -> None:
    tree.container(101)
    harness = Harness(tree)
    harness.cycle()
    tree.remove(101, file)
    reading = harness.reading(101, advance_s=10)
    assert getattr(reading, f"{field}_pct") is None
    assert getattr(reading, f"{field}_missing") == "unreadable"


def test_missing_pressure_and_event_files_leave_those_fields_empty(tree: V2Tree) -> None:
    tree.container(101)
    for name in ("cpu.pressure", "memory.pressure", "memory.events"):
        tree.remove(101, name)
    reading = Harness(tree).reading(101)
    assert reading.cpu_pressure_some_avg10 is None
    assert reading.memory_pressure_some_avg10 is None
    assert reading.oom_kills is None
    assert reading.memory_pct is not None


def test_pressure_and_oom_kills_since_the_last_sample_are_reported(tree: V2Tree) -> None:
    tree.container(101)
    tree.write(101, "memory.events", "low 0\nhigh 3\nmax 9\noom 2\noom_kill 2\noom_group_kill 0\n")
    harness = Harness(tree)
    reading = harness.reading(101)
    assert reading.cpu_pressure_some_avg10 == 1.5
    assert reading.memory_pressure_some_avg10 == 0.25
    assert reading.oom_kills is None  # kills before the first sample are not news
    assert harness.reading(101, advance_s=10).oom_kills == 0
    tree.write(101, "memory.events", "low 0\nhigh 3\nmax 12\noom 5\noom_kill 5\noom_group_kill 0\n")
    assert harness.reading(101, advance_s=10).oom_kills == 3
    tree.stop(101)  # restarted: a new cgroup counts from 0
    tree.start(101)
    tree.write(101, "memory.events", "low 0\nhigh 0\nmax 1\noom 1\noom_kill 1\noom_group_kill 0\n")
    assert harness.reading(101, advance_s=10).oom_kills == 1


def test_cpu_is_measured_against_the_cpuset_it_really_has(tree: V2Tree) -> None:
    # cores grown to 4, pvestatd has not enacted it yet: the cpuset still holds 2 CPUs
    tree.container(101, cores=4, usage_usec=0)
    tree.write(101, "cpuset.cpus.effective", "2-3\n")
    harness = Harness(tree)
    harness.cycle()
    tree.add_usage(101, 20 * SECOND)
    reading = harness.reading(101, advance_s=10)
    assert (reading.cores, reading.cpuset_cpus) == (4, 2)
    assert reading.cpu_pct == 100.0  # saturated: both CPUs it can use are busy
    assert reading.cpu_pct_proxmox == 50.0  # what Proxmox's GUI shows: 2 of 4 cores


def test_cpu_is_measured_again_after_an_unreadable_cycle_over_the_longer_interval(tree: V2Tree) -> None:
    tree.container(101, cores=1)
    harness = Harness(tree)
    harness.cycle()
    saved = (tree.cgroup(101) / "cpu.stat").read_text()
    tree.remove(101, "cpu.stat")
    assert harness.reading(101, advance_s=10).cpu_missing == "unreadable"
    (tree.cgroup(101) / "cpu.stat").write_text(saved)
    tree.add_usage(101, 5 * SECOND)  # 5 CPU-seconds over the 20 s since the last good read
    assert harness.reading(101, advance_s=10).cpu_pct == pytest.approx(25.0, abs=0.1)


def test_a_restarted_container_reports_counter_reset_not_a_huge_or_negative_percent(tree: V2Tree) -> None:
    tree.container(101, usage_usec=900 * SECOND)
    harness = Harness(tree)
    harness.cycle()
    harness.cycle(advance_s=10)
    tree.set_usage(101, 2 * SECOND)  # counter went down: a new cgroup after a restart
    reading = harness.reading(101, advance_s=10)
    assert (reading.cpu_pct, reading.cpu_missing) == (None, "counter-reset")
    assert reading.running_for_s == 0.0
    tree.add_usage(101, 4 * SECOND)
    after = harness.reading(101, advance_s=10)
    assert after.cpu_pct == pytest.approx(20.0, abs=0.1)
    assert after.running_for_s == pytest.approx(10.0)


def test_a_restart_between_cycles_is_seen_even_when_the_counter_grew_past_the_old_one(
    tree: V2Tree,
) -> None:
    tree.container(101, usage_usec=1 * SECOND)
    harness = Harness(tree)
    harness.cycle()
    # The kernel never reuses a cgroup's inode (its 64-bit cgroup id); keep the old directory
    # alive until the new one exists so the test file system cannot reuse it either.
    old = tree.cgroup(101).rename(tree.root / "old-cgroup")
    tree.start(101, usage_usec=50 * SECOND)  # new cgroup directory, counter bigger than before
    tree.set_memory(101, used_mb=100)
    shutil.rmtree(old)
    reading = harness.reading(101, advance_s=10)
    assert reading.cpu_missing == "counter-reset"


def test_running_for_grows_with_each_cycle_the_container_is_seen_running(tree: V2Tree) -> None:
    tree.container(101)
    harness = Harness(tree)
    harness.cycle()
    harness.cycle(advance_s=10)
    assert harness.reading(101, advance_s=10).running_for_s == pytest.approx(20.0)


def test_a_stopped_container_is_reported_stopped_without_measurements(tree: V2Tree) -> None:
    tree.container(101, running=False, cores=3, memory=768)
    reading = Harness(tree).reading(101)
    assert reading.status == "stopped"
    assert (reading.cores, reading.memory_mb) == (3, 768)
    assert (reading.cpu_pct, reading.cpu_missing) == (None, "stopped")
    assert (reading.memory_pct, reading.memory_missing) == (None, "stopped")


def test_containers_appearing_and_vanishing_between_cycles_are_followed(tree: V2Tree) -> None:
    tree.container(101).container(102)
    harness = Harness(tree)
    first = harness.cycle()
    assert [c.vmid for c in first.sample.containers] == [101, 102]
    tree.destroy(102)
    tree.container(103)
    second = harness.cycle(advance_s=10)
    assert [c.vmid for c in second.sample.containers] == [101, 103]
    assert by_vmid(second, 103).cpu_missing == "first-sample"
    assert harness.collector.tracked_containers == 2  # nothing kept for the destroyed one


def test_a_container_that_stops_then_starts_again_starts_over_with_first_sample(tree: V2Tree) -> None:
    tree.container(101)
    harness = Harness(tree)
    harness.cycle()
    tree.stop(101)
    assert harness.reading(101, advance_s=10).status == "stopped"
    tree.start(101, usage_usec=SECOND)
    assert harness.reading(101, advance_s=10).cpu_missing == "first-sample"


def test_ignored_containers_are_not_published_but_their_allocation_counts(tree: V2Tree) -> None:
    tree.container(101, cores=2, memory=1024).container(102, cores=4, memory=4096)
    result = Harness(tree, ignore=frozenset({102})).cycle()
    assert [c.vmid for c in result.sample.containers] == [101]
    assert result.sample.host.allocated_cores_running == 6
    assert result.sample.host.allocated_memory_mb_running == 5120


def test_host_totals_come_from_the_node_files_and_the_configs(tmp_path: Path) -> None:
    tree = V2Tree(tmp_path, cpus="0-3,8-11", memory_kb=16 * 1024 * 1024)
    tree.container(101, cores=2, memory=1024)
    tree.container(102, cores=3, memory=2048, running=False)
    tree.container(103, cores=None, memory=512)  # no cores line: may use every host CPU
    host = Harness(tree).cycle().sample.host
    assert (host.cores, host.memory_mb) == (8, 16384)
    assert (host.allocated_cores_running, host.allocated_memory_mb_running) == (10, 1536)
    assert (host.allocated_cores_all, host.allocated_memory_mb_all) == (13, 3584)


def test_config_comments_snapshots_and_tags_are_read_as_proxmox_means_them(tree: V2Tree) -> None:
    tree.container(101, running=False, cores=2, memory=1024)
    tree.conf_path(101).write_text(
        "#web server\n#second comment line\narch: amd64\ncores: 3\nhostname: web-1\nlock: backup\n"
        "memory: 2048\nswap: 256\ntags: prod;web\n\n[before-upgrade]\ncores: 1\nmemory: 512\n"
    )
    reading = Harness(tree).reading(101)
    assert (reading.cores, reading.memory_mb, reading.swap_mb) == (3, 2048, 256)
    assert (reading.hostname, reading.lock, reading.tags) == ("web-1", "backup", ("prod", "web"))


def test_a_container_with_a_broken_config_is_left_out_with_the_reason(tree: V2Tree) -> None:
    tree.container(101).container(102)
    tree.conf_path(102).write_text("cores: many\nmemory: 1024\n")
    result = Harness(tree).cycle()
    assert [c.vmid for c in result.sample.containers] == [101]
    assert "cores" in result.skipped["vmid 102"]


def test_plain_lxc_payload_cgroup_directories_are_read_too(tree: V2Tree) -> None:
    tree.container(101, running=False, memory=1000)
    payload = tree.root / "sys/fs/cgroup/lxc.payload.101"
    payload.mkdir()
    (payload / "cpu.stat").write_text("usage_usec 5\n")
    (payload / "memory.current").write_text(f"{100 * 1024 * 1024}\n")
    (payload / "memory.max").write_text(f"{1000 * 1024 * 1024}\n")
    (payload / "memory.stat").write_text("anon 1\nfile 0\n")
    reading = Harness(tree).reading(101)
    assert reading.status == "running"
    assert reading.memory_pct == pytest.approx(10.0, abs=0.1)


def test_a_symlink_leading_out_of_the_root_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    tree = V2Tree(tmp_path / "node")
    os.symlink(outside, tree.root / "sys/fs/cgroup/lxc/101")
    secret = tmp_path / "secret.conf"
    secret.write_text("cores: 2\nmemory: 512\n")
    os.symlink(secret, tree.conf_path(102))
    tree.container(103, running=False)
    result = Harness(tree).cycle()
    assert [c.vmid for c in result.sample.containers] == [103]


def test_a_config_directory_resolving_outside_the_root_is_an_error(tmp_path: Path) -> None:
    tree = V2Tree(tmp_path / "node")
    outside = tmp_path / "outside-lxc"
    outside.mkdir()
    (tree.root / "etc/pve/lxc").rmdir()
    os.symlink(outside, tree.root / "etc/pve/lxc")
    with pytest.raises(SourceError, match="outside the collector root"):
        Harness(tree).cycle()


def test_unreadable_host_files_fail_the_cycle_with_the_path_named(tree: V2Tree) -> None:
    (tree.root / "proc/meminfo").write_text("nothing useful\n")
    with pytest.raises(SourceError, match="proc/meminfo"):
        Harness(tree).cycle()


def test_each_sample_gets_the_next_sequence_number_and_the_same_boot_id(tree: V2Tree) -> None:
    tree.container(101)
    harness = Harness(tree)
    first, second = harness.cycle(), harness.cycle(advance_s=10)
    assert (first.sample.seq, second.sample.seq) == (1, 2)
    assert first.sample.boot_id == second.sample.boot_id
    assert first.sample.source == "sim"
    assert second.sample.taken_at > first.sample.taken_at


def test_an_edited_config_is_seen_on_the_next_cycle_even_when_cached(tree: V2Tree) -> None:
    tree.container(101, running=False, cores=2)
    old = tree.conf_path(101).stat().st_mtime
    os.utime(tree.conf_path(101), (old - 60, old - 60))  # an old file: its parse gets cached
    source = CgroupSource(tree.root)
    assert source.read().containers[0].conf.cores == 2
    tree.conf_path(101).write_text(tree.conf_path(101).read_text().replace("cores: 2", "cores: 4"))
    assert source.read().containers[0].conf.cores == 4


def test_a_same_size_edit_within_the_mtime_resolution_is_not_missed(tree: V2Tree) -> None:
    # /etc/pve keeps whole-second mtimes: two writes in one second can leave size and mtime
    # unchanged. A read made within 2 s of the mtime is not trusted, so the file is read again.
    tree.container(101, running=False, cores=2)
    path = tree.conf_path(101)
    stamp = 1_700_000_000.0
    os.utime(path, (stamp, stamp))
    source = CgroupSource(tree.root, wall_clock=lambda: stamp + 0.5)
    assert source.read().containers[0].conf.cores == 2
    path.write_text(path.read_text().replace("cores: 2", "cores: 3"))
    os.utime(path, (stamp, stamp))
    assert source.read().containers[0].conf.cores == 3


def _age(path: Path, seconds: float = 60) -> None:
    """Make a config look edited long ago, as most are on a real node."""
    stamp = path.stat().st_mtime - seconds
    os.utime(path, (stamp, stamp))


def test_a_resize_is_measured_against_the_new_limit_even_after_the_limit_was_reused(tree: V2Tree) -> None:
    tree.container(101, memory=1024, used_mb=512)
    _age(tree.conf_path(101))
    harness = Harness(tree)
    assert harness.reading(101).memory_pct == pytest.approx(50.0, abs=0.1)
    assert harness.reading(101, 10).memory_pct == pytest.approx(50.0, abs=0.1)
    # What `pct set 101 -memory 2048` does: the config, then memory.max on the running cgroup.
    tree.conf_path(101).write_text(tree.conf_path(101).read_text().replace("memory: 1024", "memory: 2048"))
    tree.write(101, "memory.max", f"{2048 * 1024 * 1024}\n")
    assert harness.reading(101, 10).memory_pct == pytest.approx(25.0, abs=0.1)


def test_a_restarted_container_has_its_limit_read_again(tree: V2Tree) -> None:
    tree.container(101, memory=1024, used_mb=512)
    _age(tree.conf_path(101))
    harness = Harness(tree)
    harness.reading(101)
    tree.add_usage(101, 5 * SECOND)
    harness.reading(101, 10)
    shutil.rmtree(tree.cgroup(101))  # stopped, then started with a new cgroup and another limit
    tree.start(101, memory=512)
    tree.set_memory(101, used_mb=128)
    assert harness.reading(101, 10).memory_pct == pytest.approx(25.0, abs=0.1)
