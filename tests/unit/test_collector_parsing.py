"""Parsers of the files the collector reads, and the small rules around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.collector.outage import OutageTracker
from services.collector.parsing import (
    ConfError,
    parse_conf,
    parse_cpu_list_count,
    parse_keyed,
    parse_limit,
    parse_meminfo_total_mb,
    parse_pressure_some_avg10,
)
from services.collector.sources.base import SourceError
from services.collector.sources.detect import detect_source
from shared.node_name import node_name
from shared.service_config import resolve
from tests.support import imported_modules

COLLECTOR = Path(__file__).parents[2] / "services" / "collector"


@pytest.mark.parametrize(
    ("text", "count"),
    [("0-15\n", 16), ("0\n", 1), ("0-3,8-11\n", 8), ("0,2,4-5", 4)],
)
def test_the_online_cpu_list_is_counted_as_the_kernel_writes_it(text: str, count: int) -> None:
    assert parse_cpu_list_count(text) == count


@pytest.mark.parametrize("text", ["", "a-b", "5-3", "\n"])
def test_a_garbled_cpu_list_is_an_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_cpu_list_count(text)


def test_total_memory_comes_from_meminfo_in_megabytes() -> None:
    assert parse_meminfo_total_mb("MemTotal:       65843532 kB\nMemFree: 1 kB\n") == 64300


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"some avg10=12.50 avg60=3.00 avg300=1.00 total=42\nfull avg10=0.00 total=0\n", 12.5),
        (b"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 0.0),
        (b"", None),
        (b"some avg10=oops avg60=0.00\n", None),
        (b"some avg10=250.00 avg60=0.00\n", None),
    ],
)
def test_pressure_gives_the_some_avg10_figure_or_nothing(data: bytes, value: float | None) -> None:
    assert parse_pressure_some_avg10(data) == value


def test_keyed_files_are_read_by_key_wherever_the_line_is() -> None:
    stat = b"anon 10\nfile 20\nfile_mapped 30\n"
    assert parse_keyed(stat, b"file") == 20
    assert parse_keyed(stat, b"anon") == 10
    assert parse_keyed(b"file_mapped 30\n", b"file") == "garbage"


def test_memory_max_of_max_means_no_limit() -> None:
    assert parse_limit(b"max\n") == "no-limit"
    assert parse_limit(b"1073741824\n") == 1073741824


def test_a_config_without_cores_or_memory_uses_proxmox_defaults() -> None:
    conf = parse_conf("hostname: ct\nostype: debian\n")
    assert (conf.cores, conf.memory_mb, conf.cpulimit) == (None, 512, None)


def test_a_cpulimit_of_zero_means_no_limit() -> None:
    assert parse_conf("cores: 2\ncpulimit: 0\n").cpulimit is None


@pytest.mark.parametrize(
    "text", ["cores: 0\n", "cores: 9000\n", "memory: 8\n", "memory: lots\n", "cpulimit: fast\n", "swap: -1\n"]
)
def test_a_config_value_proxmox_would_refuse_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfError):
        parse_conf(text)


def test_control_characters_in_a_hostname_cannot_reach_a_log_line() -> None:
    assert parse_conf("hostname: evil\x1b[2Jname\n").hostname == "evil?[2Jname"


def test_the_node_name_comes_from_the_flag_then_config_then_hostname_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/hostname").write_text("pve3.example.com\n")
    config_file = tmp_path / "autoscale.yaml"
    config_file.write_text("COLLECTOR:\n  node: pve2\n")

    def node(flag: str | None, path: Path) -> str:
        config = resolve(path, env={}, flags={"collector": {"node": flag}})
        return node_name(config.collector.node, tmp_path)

    assert node("pve1", config_file) == "pve1"
    assert node(None, config_file) == "pve2"
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert node(None, empty) == "pve3"


def test_auto_detection_prefers_cgroup_files_then_pvesh(tmp_path: Path) -> None:
    assert detect_source("auto", tmp_path, which=lambda name: "/usr/bin/pvesh") == "pvesh"
    (tmp_path / "sys/fs/cgroup/lxc").mkdir(parents=True)
    assert detect_source("auto", tmp_path, which=lambda name: None) == "cgroup"
    assert detect_source("sim", tmp_path) == "sim"


def test_auto_detection_without_any_source_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="--source"):
        detect_source("auto", tmp_path, which=lambda name: None)


def test_an_outage_is_announced_once_and_its_losses_reported_when_it_ends() -> None:
    tracker = OutageTracker()
    assert tracker.record_publish() is None
    assert [tracker.record_drop() for _ in range(3)] == [True, False, False]
    assert tracker.record_publish() == 3
    assert tracker.record_publish() is None
    assert (tracker.published, tracker.dropped) == (3, 3)


PURE_MODULES = ["raw.py", "parsing.py", "sampling.py", "pvesh_format.py", "outage.py"]
FORBIDDEN = {"asyncio", "nats", "os", "time", "datetime", "subprocess", "socket", "shared.clock"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_modules_import_no_io_clock_or_environment(module: str) -> None:
    imported = imported_modules((COLLECTOR / module).read_text())
    roots = {name.split(".")[0] for name in imported} | imported
    assert not roots & FORBIDDEN
