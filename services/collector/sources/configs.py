"""Read the node's container configs, `/etc/pve/lxc/<vmid>.conf` (pmxcfs, local on every
Proxmox node), re-reading only files that changed.

Every file is opened relative to a directory descriptor with O_NOFOLLOW, and names must
be numeric vmids, so nothing outside the root is read.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.collector.parsing import ConfError, parse_conf
from services.collector.raw import ConfValues
from services.collector.sources.base import SourceError
from services.collector.sources.confine import confined
from shared.validation import VMID_MAX, VMID_MIN

CONF_DIR = "etc/pve/lxc"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CONF_BYTES = 1024 * 1024
_CONF_READ = 65536
# A cached config is trusted once it was read this long after its last modification.
_MTIME_TRUST_S = 2.0


@dataclass(frozen=True, slots=True)
class _CachedConf:
    key: tuple[int, int, int]  # inode, size, mtime in ns
    trusted: bool
    conf: ConfValues


class ConfigReader:
    def __init__(self, root: Path, *, wall_clock: Callable[[], float] = time.time) -> None:
        self.root = root
        # Compared with file modification times only, so it is the file system's clock.
        self._wall_clock = wall_clock
        self._conf_cache: dict[str, _CachedConf] = {}
        self._trusted: set[int] = set()  # ids of this cycle's configs old enough to trust

    def trusted(self, conf: ConfValues) -> bool:
        """Whether this cycle's `conf` was read long enough after its last change to be
        sure it is the file's content (see `_conf`)."""
        return id(conf) in self._trusted

    def read(self, skipped: dict[str, str]) -> dict[int, ConfValues]:
        """Every container config of this node; unreadable ones go to `skipped` with why."""
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
                vmid = vmid_of(entry.name, suffix=".conf")
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


def vmid_of(name: str, *, prefix: str = "", suffix: str = "") -> int | None:
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
