"""The simulated `pct`: formats, `pct set` semantics and every error, as Proxmox prints them.

Main cases run through `<root>/usr/sbin/pct` with subprocess, the path a caller uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from simnode import pct
from simnode.tree import ContainerSpec, SimNode, build_node

MIB = 1024 * 1024

CONF_101 = """#web tier
#front%3A nginx
arch: amd64
cores: 2
hostname: web1
memory: 1024
net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:65,ip=dhcp,type=veth
ostype: debian
rootfs: local-lvm:vm-101-disk-0,size=8G
swap: 512
tags: web
unprivileged: 1
mystery_key: keep me
lxc.apparmor.profile: unconfined

[pre-upgrade]
arch: amd64
cores: 1
hostname: web1
memory: 512
snaptime: 1767225600
"""


@pytest.fixture
def node(tmp_path: Path) -> SimNode:
    return build_node(
        tmp_path / "node",
        node_name="pve1",
        host_cores=16,
        host_memory_mb=32768,
        containers=[
            ContainerSpec(101, "web1", 2, 1024, tags="web"),
            ContainerSpec(102, "web2", 2, 2048, running=False, lock="backup"),
            ContainerSpec(201, "db1", 4, 4096),
        ],
    )


def run_pct(node: SimNode, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(node.pct_path), *args], capture_output=True, text=True, check=False, timeout=30
    )


def run_inproc(node: SimNode, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = pct.main(["--root", str(node.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- formats


def test_list_prints_the_fixed_width_table_sorted_by_vmid(node: SimNode) -> None:
    res = run_pct(node, "list")
    assert res.returncode == 0
    assert res.stderr == ""
    assert res.stdout == (
        "VMID       Status     Lock         Name                \n"
        "101        running                 web1                \n"
        "102        stopped    backup       web2                \n"
        "201        running                 db1                 \n"
    )


def test_list_on_an_empty_node_prints_nothing(tmp_path: Path) -> None:
    empty = build_node(tmp_path / "e", node_name="pve1", host_cores=2, host_memory_mb=1024, containers=[])
    res = run_pct(empty, "list")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")


def test_status_running_and_stopped(node: SimNode) -> None:
    assert run_pct(node, "status", "101").stdout == "status: running\n"
    assert run_pct(node, "status", "102").stdout == "status: stopped\n"


def test_status_verbose_prints_sorted_fields(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_inproc(node, capsys, "status", "101", "--verbose")
    assert code == 0
    lines = out.splitlines()
    assert lines == sorted(lines)
    assert "maxmem: 1073741824" in lines
    assert "cpus: 2" in lines
    assert "status: running" in lines


def test_config_prints_sorted_keys_and_skips_snapshots(node: SimNode) -> None:
    node.conf_path(101).write_text(CONF_101, encoding="utf-8")
    res = run_pct(node, "config", "101")
    assert res.returncode == 0
    assert res.stdout == (
        "arch: amd64\n"
        "cores: 2\n"
        "description: web tier%0Afront%3A nginx%0A\n"
        "hostname: web1\n"
        "memory: 1024\n"
        "mystery_key: keep me\n"
        "net0: name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:65,ip=dhcp,type=veth\n"
        "ostype: debian\n"
        "rootfs: local-lvm:vm-101-disk-0,size=8G\n"
        "swap: 512\n"
        "tags: web\n"
        "unprivileged: 1\n"
        "lxc.apparmor.profile: unconfined\n"
    )
    # pve-container warns about keys it does not know, but keeps them
    assert res.stderr == "vm 101 - unable to parse value of 'mystery_key' - unknown setting 'mystery_key'\n"


def test_config_snapshot_and_current(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    node.conf_path(101).write_text(CONF_101, encoding="utf-8")
    code, out, _ = run_inproc(node, capsys, "config", "101", "--snapshot", "pre-upgrade")
    assert code == 0
    assert out == "arch: amd64\ncores: 1\nhostname: web1\nmemory: 512\nsnaptime: 1767225600\n"
    code, out, _ = run_inproc(node, capsys, "config", "101", "--current")
    assert code == 0 and "cores: 2\n" in out
    code, _, err = run_inproc(node, capsys, "config", "101", "--snapshot", "nope")
    assert code == 255
    assert err.endswith("\nsnapshot 'nope' does not exist\n")  # after the mystery_key warning


# ----------------------------------------------------------------------------- pct set


@pytest.mark.parametrize("spelling", ["-", "--"])
def test_set_accepts_both_option_spellings(node: SimNode, spelling: str) -> None:
    res = run_pct(node, "set", "101", f"{spelling}cores", "3", f"{spelling}memory", "2048")
    assert (res.returncode, res.stdout, res.stderr) == (0, "", "")
    conf = node.read_conf(101)
    assert (conf["cores"], conf["memory"]) == ("3", "2048")


def test_set_accepts_equals_form_and_interleaving(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_inproc(node, capsys, "set", "--swap=256", "101", "-cpulimit", "1.5")
    assert (code, err) == (0, "")
    assert node.read_conf(101)["swap"] == "256"
    assert node.read_conf(101)["cpulimit"] == "1.5"


def test_set_hot_applies_limits_to_a_running_container(node: SimNode) -> None:
    assert run_pct(node, "set", "101", "-memory", "1536", "-swap", "256", "-cores", "3").returncode == 0
    assert node.read_cgroup(101, "memory.max") == f"{1536 * MIB}\n"
    assert node.read_cgroup(101, "memory.high") == f"{1536 * 1024 * 1016}\n"
    assert node.read_cgroup(101, "memory.swap.max") == f"{256 * MIB}\n"
    # cores is a fast-plug option: the config changes, the cpuset waits for pvestatd
    assert node.read_conf(101)["cores"] == "3"
    assert node.read_cgroup(101, "cpuset.cpus") == "0-1\n"


def test_set_on_a_stopped_container_changes_only_the_config(node: SimNode) -> None:
    node.conf_path(102).write_text(
        node.conf_path(102).read_text(encoding="utf-8").replace("lock: backup\n", ""), encoding="utf-8"
    )
    assert run_pct(node, "set", "102", "-memory", "4096").returncode == 0
    assert node.read_conf(102)["memory"] == "4096"
    assert not node.cgroup_dir(102).exists()


def test_set_preserves_comments_snapshots_and_unknown_keys_byte_for_byte(node: SimNode) -> None:
    node.conf_path(101).write_text(CONF_101, encoding="utf-8")
    assert run_pct(node, "set", "101", "-cores", "4").returncode == 0
    assert node.conf_path(101).read_text(encoding="utf-8") == CONF_101.replace("cores: 2\n", "cores: 4\n", 1)


def test_set_inserts_a_new_key_in_sorted_position(node: SimNode) -> None:
    node.conf_path(101).write_text(CONF_101, encoding="utf-8")
    assert run_pct(node, "set", "101", "-cpulimit", "2").returncode == 0
    text = node.conf_path(101).read_text(encoding="utf-8")
    assert text == CONF_101.replace("cores: 2\n", "cores: 2\ncpulimit: 2\n", 1)


def test_set_with_an_unchanged_value_leaves_the_file_alone(node: SimNode) -> None:
    before = node.conf_path(101).stat().st_mtime_ns
    assert run_pct(node, "set", "101", "-cores", "2").returncode == 0
    assert node.conf_path(101).stat().st_mtime_ns == before


def test_set_digest_detects_concurrent_modification(
    node: SimNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_inproc(node, capsys, "set", "101", "-cores", "3", "-digest", "0" * 40)
    assert code == 255
    assert err == "detected modified configuration - file changed by other user? Try again.\n"


# ----------------------------------------------------------------------------- errors


def test_set_invalid_vmid_format(node: SimNode) -> None:
    res = run_pct(node, "set", "99", "-cores", "2")
    assert res.returncode == 255
    assert res.stdout == ""
    assert res.stderr == (
        "400 Parameter verification failed.\n"
        "vmid: invalid format - value does not look like a valid VM ID\n"
        "\n"
        "pct set <vmid> [OPTIONS]\n"
    )


def test_set_non_numeric_vmid(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_inproc(node, capsys, "set", "abc", "-cores", "2")
    assert code == 255
    assert err == (
        "400 Parameter verification failed.\n"
        "vmid: type check ('integer') failed - got 'abc'\n"
        "pct set <vmid> [OPTIONS]\n"
    )


def test_set_unknown_container(node: SimNode) -> None:
    res = run_pct(node, "set", "555", "-cores", "2")
    assert res.returncode == 255
    assert res.stderr == "Configuration file 'nodes/pve1/lxc/555.conf' does not exist\n"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("-cores", "0"), "cores: value must have a minimum value of 1"),
        (("-cores", "9000"), "cores: value must have a maximum value of 8192"),
        (("-cores", "two"), "cores: type check ('integer') failed - got 'two'"),
        (("-memory", "8"), "memory: value must have a minimum value of 16"),
        (("-swap", "-1"), "swap: value must have a minimum value of 0"),
        (("-cpulimit", "9000"), "cpulimit: value must have a maximum value of 8192"),
    ],
)
def test_set_out_of_range_values(
    node: SimNode, capsys: pytest.CaptureFixture[str], args: tuple[str, str], line: str
) -> None:
    code, _, err = run_inproc(node, capsys, "set", "101", *args)
    assert code == 255
    assert err == f"400 Parameter verification failed.\n{line}\npct set <vmid> [OPTIONS]\n"
    assert node.read_conf(101)["cores"] == "2"


def test_set_reports_every_invalid_parameter(node: SimNode) -> None:
    res = run_pct(node, "set", "101", "--cores", "0", "--memory", "1")
    assert res.stderr == (
        "400 Parameter verification failed.\n"
        "cores: value must have a minimum value of 1\n"
        "memory: value must have a minimum value of 16\n"
        "pct set <vmid> [OPTIONS]\n"
    )


def test_set_unknown_option(node: SimNode) -> None:
    res = run_pct(node, "set", "101", "-foo", "1")
    assert res.returncode == 255
    assert res.stderr == "Unknown option: foo\n400 unable to parse option\npct set <vmid> [OPTIONS]\n"


def test_set_option_without_value(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_inproc(node, capsys, "set", "101", "-cores")
    assert code == 255
    assert err == "Option cores requires an argument\n400 unable to parse option\npct set <vmid> [OPTIONS]\n"


def test_set_abbreviated_option_is_accepted_when_unique(
    node: SimNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_inproc(node, capsys, "set", "101", "-cor", "3")
    assert code == 0
    assert node.read_conf(101)["cores"] == "3"


def test_set_locked_container(node: SimNode) -> None:
    res = run_pct(node, "set", "102", "-cores", "4")
    assert res.returncode == 255
    # PVE::AbstractConfig::check_lock prints the guest type, not the vmid
    assert res.stderr == "CT is locked (backup)\n"
    assert node.read_conf(102)["cores"] == "2"


def test_set_without_options(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_inproc(node, capsys, "set", "101")
    assert (code, err) == (255, "no options specified\n")


def test_missing_and_extra_arguments(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_inproc(node, capsys, "status")
    assert (code, err) == (255, "400 not enough arguments\npct status <vmid> [OPTIONS]\n")
    code, _, err = run_inproc(node, capsys, "status", "101", "102")
    assert (code, err) == (255, "400 too many arguments\npct status <vmid> [OPTIONS]\n")


def test_unknown_command(node: SimNode) -> None:
    res = run_pct(node, "frobnicate", "101")
    assert res.returncode == 255
    assert res.stderr.startswith(
        "ERROR: unknown command 'pct frobnicate'\nUSAGE: pct <COMMAND> [ARGS] [OPTIONS]\n"
    )


def test_command_prefixes_expand_like_pve(node: SimNode, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_inproc(node, capsys, "stat", "101")
    assert (code, out) == (0, "status: running\n")


# ----------------------------------------------------------------------------- start / stop


def test_start_and_stop(node: SimNode) -> None:
    node.conf_path(102).write_text(
        node.conf_path(102).read_text(encoding="utf-8").replace("lock: backup\n", ""), encoding="utf-8"
    )
    assert run_pct(node, "start", "102").returncode == 0
    assert node.is_running(102)
    assert node.read_cgroup(102, "memory.max") == f"{2048 * MIB}\n"
    assert node.read_cgroup(102, "cpu.stat").startswith("usage_usec 0\n")
    assert run_pct(node, "status", "102").stdout == "status: running\n"
    assert run_pct(node, "stop", "102").returncode == 0
    assert not node.cgroup_dir(102).exists()


def test_start_running_and_stop_stopped_are_errors(node: SimNode) -> None:
    res = run_pct(node, "start", "101")
    assert (res.returncode, res.stderr) == (255, "CT 101 already running\n")
    res = run_pct(node, "stop", "102")
    assert (res.returncode, res.stderr) == (255, "CT 102 not running\n")


def test_start_locked_container_is_refused_unless_skiplock(
    node: SimNode, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_inproc(node, capsys, "start", "102")
    assert (code, err) == (255, "CT is locked (backup)\n")
    code, _, _ = run_inproc(node, capsys, "start", "102", "--skiplock")
    assert code == 0 and node.is_running(102)


# ----------------------------------------------------------------------------- plumbing


def test_every_invocation_is_logged(node: SimNode) -> None:
    run_pct(node, "list")
    run_pct(node, "set", "101", "-cores", "3")
    run_pct(node, "set", "999", "-cores", "3")
    assert node.pct_calls() == [["list"], ["set", "101", "-cores", "3"], ["set", "999", "-cores", "3"]]


def test_pve_sim_root_env_replaces_root_flag(node: SimNode) -> None:
    env = {**os.environ, "PVE_SIM_ROOT": str(node.root), "PYTHONPATH": str(Path(pct.__file__).parents[1])}
    res = subprocess.run(
        [sys.executable, "-m", "simnode.pct", "status", "201"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=30,
    )
    assert (res.returncode, res.stdout) == (0, "status: running\n")


def test_no_root_at_all_is_an_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PVE_SIM_ROOT", raising=False)
    assert pct.main(["list"]) == 255
    assert "PVE_SIM_ROOT" in capsys.readouterr().err


def test_a_configured_start_up_cost_delays_every_call(node: SimNode) -> None:
    """Benchmarks set the start-up of a real pct (a Perl program) through the environment."""
    env = {**os.environ, pct.STARTUP_ENV: "0.3"}
    started = time.monotonic()
    done = subprocess.run([str(node.pct_path), "config", "101"], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and "cores: 2" in done.stdout
    assert time.monotonic() - started >= 0.3


def test_a_bad_start_up_cost_is_refused_before_anything_runs(node: SimNode) -> None:
    env = {**os.environ, pct.STARTUP_ENV: "slow"}
    done = subprocess.run(
        [str(node.pct_path), "set", "101", "-cores", "3"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 255
    assert pct.STARTUP_ENV in done.stderr
    assert node.read_conf(101)["cores"] == "2"
    assert node.pct_calls() == []
