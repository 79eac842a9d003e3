"""Which cgroup files the collector keeps open between cycles, and how many."""

from __future__ import annotations

import os
from pathlib import Path

from services.collector.sources.kept_files import KeptFiles, cgroup2_devices

MOUNTINFO = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
35 25 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
90 41 0:30 /lxc /srv/node/sys/fs/cgroup/lxc rw,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
36 25 0:31 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
"""


def test_the_cgroup2_mounts_and_their_bind_mounts_are_found_by_device(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert cgroup2_devices(str(mountinfo)) == frozenset({os.makedev(0, 30)})  # v1 and sysfs left out


def test_no_mountinfo_means_nothing_is_kept_open(tmp_path: Path) -> None:
    assert cgroup2_devices(str(tmp_path / "absent")) == frozenset()
    kept = KeptFiles(8, devices=frozenset())
    assert not kept.on_kernel_fs(tmp_path)
    assert kept.slots(101, inode=1) is None


def test_a_directory_on_another_file_system_is_not_a_cgroupfs(tmp_path: Path) -> None:
    other = os.stat(tmp_path).st_dev + 1
    assert not KeptFiles(8, devices=frozenset({other})).on_kernel_fs(tmp_path)
    assert KeptFiles(8, devices=frozenset({os.stat(tmp_path).st_dev})).on_kernel_fs(tmp_path)


def test_a_restart_gives_fresh_slots_and_closes_the_old_descriptors(tmp_path: Path) -> None:
    kept = KeptFiles(2, devices=frozenset({os.stat(tmp_path).st_dev}))
    slots = kept.slots(101, inode=7)
    assert slots == [None, None]
    fd = os.open(tmp_path, os.O_RDONLY)
    slots[0] = fd
    assert kept.slots(101, inode=7) is slots and kept.open_descriptors == 1
    assert kept.slots(101, inode=8) == [None, None]  # a new cgroup directory
    assert kept.open_descriptors == 0
    try:
        os.fstat(fd)
        closed = False
    except OSError:
        closed = True
    assert closed
    kept.slots(102, inode=9)[1] = os.open(tmp_path, os.O_RDONLY)  # type: ignore[index]
    kept.keep_only({101})  # 102 stopped
    assert kept.open_descriptors == 0
