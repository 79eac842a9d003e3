"""Read containers from files: `/etc/pve/lxc/<vmid>.conf` (sources/configs.py) and cgroup v2
under `/sys/fs/cgroup`.

No process is started. Files are opened with O_NOFOLLOW under the confined root, and
names must be numeric vmids, so nothing outside the root is read.
The loop uses plain os.open/os.read on bytes: it runs for every container every cycle.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.collector.parsing import (
    parse_counter,
    parse_cpuset_count,
    parse_keyed,
    parse_limit,
    parse_oom_kills,
    parse_pressure_some_avg10,
)
from services.collector.raw import ConfValues, RawContainer, RawNode
from services.collector.sources.base import SourceError, SourceLabel
from services.collector.sources.configs import ConfigReader, vmid_of
from services.collector.sources.confine import confined, resolve_root
from services.collector.sources.host import read_host
from services.collector.sources.kept_files import KeptFiles
from shared.models import MissingReason

CGROUP_ROOT = "sys/fs/cgroup"
CGROUP_LXC = "sys/fs/cgroup/lxc"  # Proxmox 7+: /sys/fs/cgroup/lxc/<vmid>/
PAYLOAD_PREFIX = "lxc.payload."  # plain LXC: /sys/fs/cgroup/lxc.payload.<vmid>/

_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class _KnownLimit:
    conf: ConfValues
    inode: int
    memory_max: int
    usage_usec: int


class CgroupSource:
    """cgroup v2 + Proxmox config files; labelled "sim" when reading a simulated node."""

    def __init__(
        self,
        root: Path,
        *,
        label: SourceLabel = "cgroup",
        wall_clock: Callable[[], float] = time.time,
        cgroup_devices: frozenset[int] | None = None,
    ) -> None:
        """`cgroup_devices`: devices whose files may be kept open (default: the cgroup2
        mounts of this machine; a benchmark passes its own tree's)."""
        self.root = resolve_root(root)
        self.label: SourceLabel = label
        self._configs = ConfigReader(self.root, wall_clock=wall_clock)
        # vmid -> (config it was read with, cgroup inode, memory.max, cpu usage then).
        # Proxmox changes memory.max only when it applies a config change or starts the
        # container, so while the config is unchanged and the container has not restarted
        # (same cgroup inode, CPU counter not gone down) the limit is too: three system
        # calls saved per container and cycle.
        self._limits: dict[int, _KnownLimit] = {}
        self._kept = KeptFiles(len(_CGROUP_FILES), cgroup_devices)  # kept open on the kernel's cgroupfs

    def close(self) -> None:
        """Close the cgroup files kept open (the source reopens them if read again)."""
        self._kept.close()

    def read(self) -> RawNode:
        cores, memory_mb = read_host(self.root)
        node = RawNode(host_cores=cores, host_memory_mb=memory_mb)
        confs = self._configs.read(node.skipped)
        cgroups = self._cgroup_dirs()
        limits: dict[int, _KnownLimit] = {}
        for vmid, conf in confs.items():
            where = cgroups.get(vmid)
            if where is None:
                node.containers.append(RawContainer(vmid, conf, running=False))
                continue
            known = self._limits.get(vmid)
            if known is not None and (known.conf is not conf or known.inode != where[1]):
                known = None
            slots = self._kept.slots(vmid, where[1]) if where[2] else None
            raw = _read_cgroup(vmid, conf, where[0], where[1], known, slots)
            node.containers.append(raw)
            usage = raw.cpu_usage_usec
            if self._configs.trusted(conf) and isinstance(raw.memory_max, int) and isinstance(usage, int):
                limits[vmid] = _KnownLimit(conf, where[1], raw.memory_max, usage)
        self._limits = limits  # only running containers: bounded
        self._kept.keep_only(set(cgroups))
        return node

    # ------------------------------------------------------------ cgroups

    def _cgroup_dirs(self) -> dict[int, tuple[str, int, bool]]:
        """vmid → (cgroup directory, its inode, on the kernel's cgroupfs) of each running container."""
        found: dict[int, tuple[str, int, bool]] = {}
        for relative, prefix in ((CGROUP_ROOT, PAYLOAD_PREFIX), (CGROUP_LXC, "")):
            parent = confined(self.root, relative)
            kernel = self._kept.on_kernel_fs(parent)
            try:
                with os.scandir(parent) as entries:
                    for entry in entries:
                        vmid = vmid_of(entry.name, prefix=prefix)
                        if vmid is not None and entry.is_dir(follow_symlinks=False):
                            found[vmid] = (f"{parent}/{entry.name}", entry.inode(), kernel)
            except FileNotFoundError:
                continue  # nothing running in this layout
            except OSError as exc:
                raise SourceError(f"cannot list cgroups in {parent}: {exc.strerror}") from exc
        return found


# Read in this order, with a buffer that fits each file in one read (memory.stat is the
# only long one); the position here is the position in `_read_files`' answer.
_CGROUP_FILES = (
    ("cpu.stat", 1024),
    ("memory.current", 64),
    ("memory.max", 64),
    ("memory.stat", 16384),
    ("cpu.pressure", 256),
    ("memory.pressure", 256),
    ("memory.events", 512),
    ("cpuset.cpus.effective", 4096),
)


def _read_cgroup(
    vmid: int,
    conf: ConfValues,
    path: str,
    inode: int,
    known: _KnownLimit | None = None,
    slots: list[int | None] | None = None,
    _open: Callable[..., int] = os.open,
    _read: Callable[[int, int], bytes] = os.read,
    _pread: Callable[[int, int, int], bytes] = os.pread,
    _close: Callable[[int], None] = os.close,
) -> RawContainer:
    """One running container's cgroup files. The collector's hot loop: os functions are
    bound as defaults to save global lookups. Without `slots` each file is opened, read
    once and closed; with them (kernel cgroupfs, see kept_files.py) a file is opened once,
    kept in its slot and re-read from offset 0, and closed when a read fails.

    Files are opened by full path (the directory came from a listing inside the confined
    root, and O_NOFOLLOW refuses a symlinked file): a directory descriptor per container
    would cost two more system calls each, a tenth of the cycle at 1,000 containers."""
    found: list[bytes | MissingReason] = []
    prefix = path + "/"
    known_limit: int | None = None
    usage: int | MissingReason | None = None  # parsed early only when a known limit needs it
    for index, (name, size) in enumerate(_CGROUP_FILES):
        if known is not None and name == "memory.max":
            usage = found[0] if isinstance(found[0], str) else parse_keyed(found[0], b"usage_usec")
            if isinstance(usage, int) and usage >= known.usage_usec:
                known_limit = known.memory_max  # same config, no restart: same limit
                found.append(b"")
                continue
        if slots is not None:
            fd = slots[index]
            if fd is None:
                found.append(_open_kept(slots, index, prefix + name, size, path, _open, _pread, _close))
                continue
            try:
                found.append(_pread(fd, size, 0))
            except OSError as exc:
                slots[index] = None  # a removed cgroup (ENODEV) or a failed read: reopen next time
                _close(fd)
                found.append(_missing(exc, path))
            continue
        try:
            fd = _open(prefix + name, _FILE_FLAGS)
        except OSError as exc:
            found.append(_missing(exc, path))
            continue
        try:
            found.append(_read(fd, size))
        except OSError as exc:
            found.append(_missing(exc, path))
        finally:
            _close(fd)
    if all(reason == "vanished" for reason in found):
        return RawContainer(vmid, conf, running=False)  # stopped since we listed it
    return _parsed(vmid, conf, inode, found, usage, known_limit)


def _parsed(
    vmid: int,
    conf: ConfValues,
    inode: int,
    found: list[bytes | MissingReason],
    usage: int | MissingReason | None,
    known_limit: int | None,
) -> RawContainer:
    """Parse the raw file contents read by `_read_cgroup`; a reason stays a reason."""
    cpu_stat, current, limit, stat, cpu_psi, memory_psi, events, cpuset = found
    if usage is None:
        usage = cpu_stat if isinstance(cpu_stat, str) else parse_keyed(cpu_stat, b"usage_usec")
    if known_limit is None:
        memory_max = limit if isinstance(limit, str) else parse_limit(limit)
    else:
        memory_max = known_limit
    return RawContainer(
        vmid,
        conf,
        True,
        inode,
        usage,
        None,
        current if isinstance(current, str) else parse_counter(current),
        memory_max,
        stat if isinstance(stat, str) else parse_keyed(stat, b"file"),
        False,
        None if isinstance(cpu_psi, str) else parse_pressure_some_avg10(cpu_psi),
        None if isinstance(memory_psi, str) else parse_pressure_some_avg10(memory_psi),
        None if isinstance(events, str) else parse_oom_kills(events),
        cpuset_cpus=None if isinstance(cpuset, str) else parse_cpuset_count(cpuset),
    )


def _open_kept(
    slots: list[int | None],
    index: int,
    file: str,
    size: int,
    directory: str,
    _open: Callable[..., int],
    _pread: Callable[[int, int, int], bytes],
    _close: Callable[[int], None],
) -> bytes | MissingReason:
    """Open a file into its slot (kept open from now on) and read it."""
    try:
        fd = _open(file, _FILE_FLAGS)
    except OSError as exc:
        return _missing(exc, directory)  # tried again next cycle
    try:
        data = _pread(fd, size, 0)
    except OSError as exc:
        _close(fd)
        return _missing(exc, directory)
    slots[index] = fd
    return data


def _missing(exc: OSError, path: str) -> MissingReason:
    """Why a cgroup file could not be read: the cgroup went away mid-read, or it is unreadable."""
    if exc.errno == errno.ENODEV:  # reading a file of a removed cgroup
        return "vanished"
    if exc.errno == errno.ENOENT and not os.path.isdir(path):  # directory removed
        return "vanished"
    return "unreadable"
