"""Keep the cgroup files of running containers open between cycles, on the kernel's cgroupfs.

A cycle at a 1 s interval reads every file of every running container: open, read and
close are three system calls per file, `pread` at offset 0 on a file kept open is one.
The kernel builds a cgroup file's content anew on every read from offset 0, so a kept
descriptor always shows the current counters. It stays tied to its cgroup, though: when
a container restarts, its cgroup directory is a new one (a new inode), and the files are
opened again; a descriptor of a removed cgroup reads ENODEV and is closed.

Only files on a cgroup2 file system are kept: a simulated node (simnode) replaces its
files by rename, which a kept descriptor would never see, so there every read opens
the file, as before. Descriptors are bounded by the process's open-file limit (the soft
limit is raised to the hard one, as Proxmox's services allow); containers beyond it
are read the old way.
"""

from __future__ import annotations

import contextlib
import os
import resource
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
_SPARE_FDS = 256  # for the broker connection, the config files and everything else


def cgroup2_devices(mountinfo: str = MOUNTINFO) -> frozenset[int]:
    """Device numbers of the mounted cgroup2 file systems (bind mounts included)."""
    devices = set()
    try:
        with open(mountinfo, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return frozenset()
    for line in lines:
        fields = line.split()
        if " - " not in line or len(fields) < 3:
            continue
        fstype = line.split(" - ", 1)[1].split()[0]
        major, _, minor = fields[2].partition(":")
        if fstype == "cgroup2" and major.isdigit() and minor.isdigit():
            devices.add(os.makedev(int(major), int(minor)))
    return frozenset(devices)


def _raised_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one (capped); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
    return int(soft) if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(slots=True)
class _Entry:
    inode: int
    fds: list[int | None]


class KeptFiles:
    """Per running container, one slot per cgroup file: an open descriptor or None."""

    def __init__(self, files_per_container: int, devices: frozenset[int] | None = None) -> None:
        self._per = files_per_container
        self._devices = cgroup2_devices() if devices is None else devices
        self._capacity = 0
        if self._devices:
            self._capacity = max(0, (_raised_fd_limit() - _SPARE_FDS) // files_per_container)
        self._entries: dict[int, _Entry] = {}

    def on_kernel_fs(self, directory: str | os.PathLike[str]) -> bool:
        """True when `directory` is on a cgroup2 file system (its files may be kept open)."""
        if not self._devices:
            return False
        try:
            return os.stat(directory).st_dev in self._devices
        except OSError:
            return False

    def slots(self, vmid: int, inode: int) -> list[int | None] | None:
        """The container's slots (fresh ones after a restart); None beyond the fd limit."""
        entry = self._entries.get(vmid)
        if entry is not None:
            if entry.inode == inode:
                return entry.fds
            self._close(entry)
            del self._entries[vmid]
        if len(self._entries) >= self._capacity:
            return None
        entry = self._entries[vmid] = _Entry(inode, [None] * self._per)
        return entry.fds

    def keep_only(self, running: set[int]) -> None:
        """Close the files of containers that are not running any more (bounded)."""
        for vmid in [v for v in self._entries if v not in running]:
            self._close(self._entries.pop(vmid))

    def close(self) -> None:
        self.keep_only(set())

    @property
    def open_descriptors(self) -> int:
        return sum(fd is not None for entry in self._entries.values() for fd in entry.fds)

    @staticmethod
    def _close(entry: _Entry) -> None:
        for fd in entry.fds:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
