"""Read containers from files: `/etc/pve/lxc/<vmid>.conf` and cgroup v2 under `/sys/fs/cgroup`.

No process is started. Every file is opened relative to a directory descriptor with
O_NOFOLLOW, and names must be numeric vmids, so nothing outside the root is read.
The loop uses plain os.open/os.read on bytes: it runs for every container every cycle.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.collector.parsing import (
    ConfError,
    parse_conf,
    parse_counter,
    parse_keyed,
    parse_limit,
    parse_oom_kills,
    parse_pressure_some_avg10,
)
from services.collector.raw import ConfValues, RawContainer, RawNode
from services.collector.sources.base import SourceError, SourceLabel
from services.collector.sources.confine import confined, resolve_root
from services.collector.sources.host import read_host
from services.collector.sources.kept_files import KeptFiles
from shared.models import MissingReason
from shared.validation import VMID_MAX, VMID_MIN

CONF_DIR = "etc/pve/lxc"
CGROUP_ROOT = "sys/fs/cgroup"
CGROUP_LXC = "sys/fs/cgroup/lxc"  # Proxmox 7+: /sys/fs/cgroup/lxc/<vmid>/
PAYLOAD_PREFIX = "lxc.payload."  # plain LXC: /sys/fs/cgroup/lxc.payload.<vmid>/

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CONF_BYTES = 1024 * 1024
_CONF_READ = 65536
# A cached config is trusted once it was read this long after its last modification.
_MTIME_TRUST_S = 2.0


@dataclass(frozen=True, slots=True)
class _KnownLimit:
    conf: ConfValues
    inode: int
    memory_max: int
    usage_usec: int


@dataclass(frozen=True, slots=True)
class _CachedConf:
    key: tuple[int, int, int]  # inode, size, mtime in ns
    trusted: bool
    conf: ConfValues


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
        # Compared with file modification times only, so it is the file system's clock.
        self._wall_clock = wall_clock
        self._conf_cache: dict[str, _CachedConf] = {}
        # vmid -> (config it was read with, cgroup inode, memory.max, cpu usage then).
        # Proxmox changes memory.max only when it applies a config change or starts the
        # container, so while the config is unchanged and the container has not restarted
        # (same cgroup inode, CPU counter not gone down) the limit is too: three system
        # calls saved per container and cycle.
        self._limits: dict[int, _KnownLimit] = {}
        self._trusted: set[int] = set()  # ids of this cycle's configs old enough to trust
        self._kept = KeptFiles(len(_CGROUP_FILES), cgroup_devices)  # kept open on the kernel's cgroupfs

    def close(self) -> None:
        """Close the cgroup files kept open (the source reopens them if read again)."""
        self._kept.close()

    def read(self) -> RawNode:
        cores, memory_mb = read_host(self.root)
        node = RawNode(host_cores=cores, host_memory_mb=memory_mb)
        confs = self._configs(node.skipped)
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
            if id(conf) in self._trusted and isinstance(raw.memory_max, int) and isinstance(usage, int):
                limits[vmid] = _KnownLimit(conf, where[1], raw.memory_max, usage)
        self._limits = limits  # only running containers: bounded
        self._kept.keep_only(set(cgroups))
        return node

    # ------------------------------------------------------------ configs

    def _configs(self, skipped: dict[str, str]) -> dict[int, ConfValues]:
        directory = confined(self.root, CONF_DIR)
        try:
            dir_fd = os.open(directory, _DIR_FLAGS)
        except FileNotFoundError:
            return {}  # no container was ever created on this node
        except OSError as exc:
            raise SourceError(f"cannot list container configs in {directory}: {exc.strerror}") from exc
        found: dict[int, ConfValues] = {}
        cache: dict[str, _CachedConf] = {}
        self._trusted = set()
        now = self._wall_clock()
        try:
            for entry in os.scandir(dir_fd):
                vmid = _vmid_of(entry.name, suffix=".conf")
                if vmid is None:
                    continue
                try:
                    cached = self._conf(dir_fd, entry, now)
                except ConfError as exc:
                    skipped[f"vmid {vmid}"] = f"{directory}/{entry.name}: {exc}"
                    continue
                if cached is not None:
                    found[vmid] = cached.conf
                    cache[entry.name] = cached
                    if cached.trusted:
                        self._trusted.add(id(cached.conf))
        finally:
            os.close(dir_fd)
        self._conf_cache = cache  # only files that exist now: bounded
        return found

    def _conf(self, dir_fd: int, entry: os.DirEntry[str], now: float) -> _CachedConf | None:
        """A config, re-read only when the file changed; None if it vanished meanwhile.

        A file is re-read when its inode, size or mtime differ from the cached read, or when
        that read was made too soon after the mtime to trust it: Proxmox's /etc/pve keeps
        mtimes in whole seconds, so two same-size writes in one second look identical
        (the "racily clean" problem git solves the same way).
        """
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None  # a symlink or anything else that is not a plain config file
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = self._conf_cache.get(entry.name)
        if cached is not None and cached.key == key and cached.trusted:
            return cached
        data = _read_conf(dir_fd, entry.name)
        if data is None:
            return None
        conf = parse_conf(data.decode("utf-8", errors="replace"))
        trusted = now - st.st_mtime_ns / 1e9 >= _MTIME_TRUST_S
        return _CachedConf(key, trusted, conf)

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
                        vmid = _vmid_of(entry.name, prefix=prefix)
                        if vmid is not None and entry.is_dir(follow_symlinks=False):
                            found[vmid] = (f"{parent}/{entry.name}", entry.inode(), kernel)
            except FileNotFoundError:
                continue  # nothing running in this layout
            except OSError as exc:
                raise SourceError(f"cannot list cgroups in {parent}: {exc.strerror}") from exc
        return found


def _vmid_of(name: str, *, prefix: str = "", suffix: str = "") -> int | None:
    """The vmid a directory entry is named after, or None for anything else."""
    digits = name[len(prefix) : len(name) - len(suffix)] if prefix or suffix else name
    if not (digits.isdigit() and digits.isascii()):
        return None
    if (prefix and not name.startswith(prefix)) or (suffix and not name.endswith(suffix)):
        return None
    vmid = int(digits)
    return vmid if VMID_MIN <= vmid <= VMID_MAX else None


def _read_conf(dir_fd: int, name: str) -> bytes | None:
    """A config file's bytes; None when it vanished, ConfError when it cannot be read."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfError(f"cannot read: {exc.strerror}") from exc
    try:
        first = os.read(fd, _CONF_READ)
        if len(first) < _CONF_READ:
            return first  # a short read of a regular file is its end: one read for most configs
        chunks = [first]
        size = len(first)
        while chunk := os.read(fd, _CONF_READ):
            chunks.append(chunk)
            size += len(chunk)
            if size > _MAX_CONF_BYTES:
                raise ConfError(f"larger than {_MAX_CONF_BYTES} bytes")
    except OSError as exc:
        raise ConfError(f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return b"".join(chunks)


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
    cpu_stat, current, limit, stat, cpu_psi, memory_psi, events = found
    return RawContainer(
        vmid,
        conf,
        True,
        inode,
        usage
        if usage is not None
        else cpu_stat
        if isinstance(cpu_stat, str)
        else parse_keyed(cpu_stat, b"usage_usec"),
        None,
        current if isinstance(current, str) else parse_counter(current),
        known_limit if known_limit is not None else limit if isinstance(limit, str) else parse_limit(limit),
        stat if isinstance(stat, str) else parse_keyed(stat, b"file"),
        False,
        None if isinstance(cpu_psi, str) else parse_pressure_some_avg10(cpu_psi),
        None if isinstance(memory_psi, str) else parse_pressure_some_avg10(memory_psi),
        None if isinstance(events, str) else parse_oom_kills(events),
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
