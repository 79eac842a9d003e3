"""The command model: only validated values become pct arguments."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.actuator.commands import (
    HOST_PROBE,
    CommandRefused,
    ConfigUnreadable,
    HostLimits,
    ReadConfig,
    Resize,
    Start,
    Stop,
    argv,
    parse_config,
    parse_host_probe,
    read_config,
    resize,
)

HOST = HostLimits(cores=16, memory_mb=32768)
PCT = "/usr/sbin/pct"
ALLOWED_TOKEN = re.compile(
    r"^(/usr/sbin/pct|set|config|start|stop|clone|-cores|-memory|--snapname|--hostname|[0-9]+|[A-Za-z0-9_-]+)$"
)


def test_a_resize_is_one_pct_set_with_both_flags() -> None:
    assert argv(resize(101, 3, 2048, HOST), PCT) == (PCT, "set", "101", "-cores", "3", "-memory", "2048")


def test_reading_a_config_is_pct_config() -> None:
    assert argv(read_config(101), PCT) == (PCT, "config", "101", "--current")


def test_start_and_stop_render_but_validate_like_the_rest() -> None:
    assert argv(Start(101)) == (PCT, "start", "101")
    assert argv(Stop(101)) == (PCT, "stop", "101")
    with pytest.raises(CommandRefused):
        argv(Stop(True))


@pytest.mark.parametrize(
    ("vmid", "cores", "memory", "code"),
    [
        ("101; rm -rf /", 2, 1024, "invalid-vmid"),
        ("$(reboot)", 2, 1024, "invalid-vmid"),
        (-101, 2, 1024, "invalid-vmid"),
        (99, 2, 1024, "invalid-vmid"),
        (10**12, 2, 1024, "invalid-vmid"),
        (True, 2, 1024, "invalid-vmid"),
        (101, 2.5, 1024, "invalid-cores"),
        (101, True, 1024, "invalid-cores"),
        (101, 0, 1024, "invalid-cores"),
        (101, 17, 1024, "invalid-cores"),
        (101, "3 -memory 1", 1024, "invalid-cores"),
        (101, 2, 0, "invalid-memory"),
        (101, 2, 15, "invalid-memory"),
        (101, 2, 32769, "invalid-memory"),
        (101, 2, "1024`id`", "invalid-memory"),
    ],
    ids=lambda v: repr(v),
)
def test_values_outside_the_allowed_set_are_refused(vmid: Any, cores: Any, memory: Any, code: str) -> None:
    with pytest.raises(CommandRefused) as refused:
        resize(vmid, cores, memory, HOST)
    assert refused.value.code == code


def test_a_hand_built_operation_is_checked_again_when_rendered() -> None:
    with pytest.raises(CommandRefused):
        argv(Resize(vmid="101;id", cores=2, memory_mb=1024))  # type: ignore[arg-type]
    with pytest.raises(CommandRefused):
        argv(ReadConfig(vmid=5))


@pytest.mark.parametrize("path", ["pct", "/usr/sbin/pct; id", "/usr/../bin/sh", "/usr/sbin/p ct"])
def test_a_suspicious_pct_path_is_refused(path: str) -> None:
    with pytest.raises(CommandRefused):
        argv(read_config(101), path)


@given(
    vmid=st.one_of(st.integers(), st.text(), st.floats(), st.booleans(), st.none()),
    cores=st.one_of(st.integers(), st.text(), st.floats(), st.booleans()),
    memory=st.one_of(st.integers(), st.text(), st.floats(), st.booleans()),
)
def test_random_inputs_never_produce_an_argument_outside_the_allowed_set(
    vmid: Any, cores: Any, memory: Any
) -> None:
    try:
        tokens = argv(resize(vmid, cores, memory, HOST), PCT)
    except CommandRefused:
        return
    assert all(ALLOWED_TOKEN.fullmatch(token) for token in tokens)
    assert 100 <= int(tokens[2]) <= 999_999_999
    assert 1 <= int(tokens[4]) <= HOST.cores and 16 <= int(tokens[6]) <= HOST.memory_mb


def test_pct_config_output_gives_sizes_and_lock_and_ignores_snapshots() -> None:
    text = "arch: amd64\ncores: 2\nlock: backup\nmemory: 1024\nswap: 512\n\n[snap1]\ncores: 8\nmemory: 9999\n"
    config = parse_config(text)
    assert (config.cores, config.memory_mb, config.lock) == (2, 1024, "backup")


def test_pct_config_without_cores_means_every_host_core_and_default_memory() -> None:
    config = parse_config("arch: amd64\nhostname: ct\n")
    assert (config.effective_cores(HOST), config.memory_mb) == (16, 512)


def test_garbage_sizes_in_pct_config_are_an_error_not_a_zero() -> None:
    with pytest.raises(ConfigUnreadable):
        parse_config("cores: two\nmemory: 1024\n")


def test_the_host_probe_reads_memtotal_and_the_online_cpu_list() -> None:
    assert HOST_PROBE[0] == "cat"
    text = "MemTotal:       32768000 kB\nMemFree: 1 kB\n0-7,16-23\n"
    assert parse_host_probe(text) == HostLimits(cores=16, memory_mb=32000)


def test_pending_cores_and_memory_are_read_but_never_taken_for_the_current_size() -> None:
    text = "cores: 3\nmemory: 1024\n\n[pve:pending]\nmemory: 2048\nswap: 0\n\n[snap1]\ncores: 9\n"
    config = parse_config(text)
    assert (config.cores, config.memory_mb, config.pending) == (3, 1024, (("memory", "2048"),))
