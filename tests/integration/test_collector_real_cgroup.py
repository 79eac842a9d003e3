"""The collector against the kernel's own cpu.stat, where this machine lets a test make a cgroup."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.collector.cycle import Collector
from services.collector.sampling import SamplingSettings
from services.collector.sources.cgroup import CgroupSource
from shared.clock import SystemClock
from shared.models import ContainerReading

VMID = 4242
BUSY_LOOP = "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end:\n    pass\n"


def cgroup2_mount() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def new_cgroup(prefix: str) -> Path:
    """A fresh cgroup v2 directory under the cgroup2 mount, or a skip saying why not."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a cgroup and bind-mount it")
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 file system is mounted on this machine")
    cgroup = mount / f"{prefix}-{uuid.uuid4().hex[:8]}"
    try:
        cgroup.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a child cgroup under {mount}: {exc.strerror}")
    return cgroup


def node_root(tmp_path: Path) -> Path:
    """A node's files for one container (config, host size); its cgroups are mounted in."""
    root = tmp_path / "node"
    (root / "etc/pve/lxc").mkdir(parents=True)
    (root / "etc/pve/lxc" / f"{VMID}.conf").write_text("cores: 1\nmemory: 512\nhostname: real\n")
    (root / "sys/devices/system/cpu").mkdir(parents=True)
    (root / "sys/devices/system/cpu/online").write_text(Path("/sys/devices/system/cpu/online").read_text())
    (root / "proc").mkdir()
    (root / "proc/meminfo").write_text(Path("/proc/meminfo").read_text())
    return root


@contextlib.contextmanager
def child_cgroup() -> Iterator[Path]:
    """A fresh cgroup v2 directory with a busy process in it, or a skip saying why not."""
    cgroup = new_cgroup("collector-test")
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        if not (cgroup / "cpu.stat").exists():
            pytest.skip(f"{cgroup} has no cpu.stat (kernel older than 4.20?)")
        try:
            (cgroup / "cgroup.procs").write_text(str(busy.pid))
        except OSError as exc:
            pytest.skip(f"cannot move a process into {cgroup}: {exc.strerror}")
        yield cgroup
    finally:
        busy.kill()
        busy.wait()
        for _ in range(50):  # the cgroup can be removed once the kernel has reaped the process
            with contextlib.suppress(OSError):
                cgroup.rmdir()
                break
            time.sleep(0.02)


@contextlib.contextmanager
def bind_mounted(source: Path, target: Path) -> Iterator[None]:
    target.mkdir(parents=True)
    done = subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount the cgroup into a test root: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=False)


def test_a_busy_process_in_a_real_cgroup_shows_as_busy_cpu(tmp_path: Path) -> None:
    root = node_root(tmp_path)
    with child_cgroup() as cgroup, bind_mounted(cgroup, root / f"sys/fs/cgroup/lxc/{VMID}"):
        clock = SystemClock()
        collector = Collector(CgroupSource(root), node="pve1", interval_s=1, settings=SamplingSettings())
        first = collector.collect(clock.now(), clock.monotonic()).sample.containers[0]
        time.sleep(1.0)
        second = collector.collect(clock.now(), clock.monotonic()).sample.containers[0]
    assert first.cpu_missing == "first-sample"
    assert second.status == "running"
    # One spinning process on a 1-core container. On a loaded 2-core machine (CI runs
    # four test workers) it may get only a share of a core; a stale or misread counter
    # reads 0, so a clearly non-zero figure is what proves the read.
    assert second.cpu_pct is not None and second.cpu_pct > 5.0


@contextlib.contextmanager
def parent_cgroup() -> Iterator[Path]:
    """An empty cgroup v2 directory to hold container cgroups, or a skip saying why not."""
    parent = new_cgroup("collector-lxc")
    try:
        yield parent
    finally:
        for child in parent.iterdir():
            if child.is_dir():
                with contextlib.suppress(OSError):
                    child.rmdir()
        with contextlib.suppress(OSError):
            parent.rmdir()


@contextlib.contextmanager
def started(parent: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A container "start": a new cgroup <parent>/<VMID> with a busy process in it."""
    cgroup = parent / str(VMID)
    cgroup.mkdir()
    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        (cgroup / "cgroup.procs").write_text(str(busy.pid))
        yield busy
    finally:
        busy.kill()
        busy.wait()
        for _ in range(50):
            with contextlib.suppress(OSError):
                cgroup.rmdir()
                break
            time.sleep(0.02)


def test_kept_open_cgroup_files_follow_a_container_across_a_restart(tmp_path: Path) -> None:
    """On the kernel's cgroupfs the files stay open between cycles and are re-read from
    offset 0; a restart (a new cgroup directory) reopens them, a stop closes them."""
    root = node_root(tmp_path)
    clock = SystemClock()
    with parent_cgroup() as parent, bind_mounted(parent, root / "sys/fs/cgroup/lxc"):
        source = CgroupSource(root)
        collector = Collector(source, node="pve1", interval_s=1, settings=SamplingSettings())

        def reading() -> ContainerReading:
            return collector.collect(clock.now(), clock.monotonic()).sample.containers[0]

        try:
            with started(parent):
                reading()
                kept = source._kept.open_descriptors
                time.sleep(1.0)
                busy_first = reading()
            with started(parent):  # the same vmid, a new cgroup: a restart
                restarted = reading()
                time.sleep(1.0)
                busy_again = reading()
            stopped = reading()
        finally:
            source.close()
    assert kept >= 1  # cpu.stat at least is held open on this kernel
    assert busy_first.cpu_pct is not None and busy_first.cpu_pct > 5.0  # re-read, not stale
    assert (restarted.status, restarted.cpu_missing) == ("running", "counter-reset")
    assert busy_again.cpu_pct is not None and busy_again.cpu_pct > 5.0  # the new cgroup's counter
    assert stopped.status == "stopped"
    assert source._kept.open_descriptors == 0
