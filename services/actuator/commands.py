"""The closed set of `pct` operations the actuator may run, and the parser for `pct config`.

Pure: every operation is built from validated, typed values and rendered as a tuple of
argument strings. Anything outside the allowed ranges raises `CommandRefused` before an
executor ever sees it. No I/O, no clock, no environment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.validation import VMID_MAX, VMID_MIN

# pve-container's schema limits, narrowed further by the host's capacity.
MIN_MEMORY_MB = 16
MAX_CORES_SCHEMA = 8192
_PCT_PATH = re.compile(r"^/[A-Za-z0-9._/-]+$")


class CommandRefused(ValueError):
    """A value that must not reach `pct`; the text says which and why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class HostLimits:
    """The host's capacity: no container may be given more than the whole host."""

    cores: int
    memory_mb: int

    def __post_init__(self) -> None:
        _check_int("host cores", self.cores, 1, MAX_CORES_SCHEMA)
        _check_int("host memory", self.memory_mb, MIN_MEMORY_MB, 2**40)


@dataclass(frozen=True)
class Resize:
    """`pct set <vmid> -cores N -memory M`: always both flags, so re-running it is a no-op."""

    vmid: int
    cores: int
    memory_mb: int


@dataclass(frozen=True)
class ReadConfig:
    """`pct config <vmid>`: the current configuration, read before and after a change."""

    vmid: int


@dataclass(frozen=True)
class Start:
    vmid: int


@dataclass(frozen=True)
class Stop:
    vmid: int


Operation = Resize | ReadConfig | Start | Stop


def _check_int(name: str, value: object, low: int, high: int) -> int:
    # bool is an int in Python; "True cores" is never what anybody meant.
    code = f"invalid-{name.replace('host ', '')}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandRefused(code, f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise CommandRefused(code, f"{name} {value} is outside {low}..{high}")
    return value


def check_vmid(value: object) -> int:
    return _check_int("vmid", value, VMID_MIN, VMID_MAX)


def resize(vmid: object, cores: object, memory_mb: object, limits: HostLimits) -> Resize:
    """A validated resize: cores within 1..host cores, memory within 16 MB..host memory."""
    return Resize(
        vmid=check_vmid(vmid),
        cores=_check_int("cores", cores, 1, limits.cores),
        memory_mb=_check_int("memory", memory_mb, MIN_MEMORY_MB, limits.memory_mb),
    )


def read_config(vmid: object) -> ReadConfig:
    return ReadConfig(vmid=check_vmid(vmid))


def check_pct_path(path: str) -> str:
    """The pct binary is configuration, but it still becomes argv[0]: absolute and plain."""
    if not _PCT_PATH.fullmatch(path) or "/../" in f"{path}/":
        raise CommandRefused("invalid-pct-path", "pct path must be an absolute path without '..'")
    return path


def argv(operation: Operation, pct_path: str = "/usr/sbin/pct") -> tuple[str, ...]:
    """Render an operation as argument strings, re-checking every value on the way out."""
    pct = check_pct_path(pct_path)
    match operation:
        case Resize(vmid, cores, memory_mb):
            check_vmid(vmid)
            _check_int("cores", cores, 1, MAX_CORES_SCHEMA)
            _check_int("memory", memory_mb, MIN_MEMORY_MB, 2**40)
            return (pct, "set", str(vmid), "-cores", str(cores), "-memory", str(memory_mb))
        case ReadConfig(vmid):
            # --current: the main section only, never pending values shown as if applied
            return (pct, "config", str(check_vmid(vmid)), "--current")
        case Start(vmid):
            return (pct, "start", str(check_vmid(vmid)))
        case Stop(vmid):
            return (pct, "stop", str(check_vmid(vmid)))
    raise CommandRefused("unknown-operation", f"unknown operation {type(operation).__name__}")


# ------------------------------------------------------------------ pct config output


@dataclass(frozen=True)
class ContainerConfig:
    """What the actuator needs from `pct config`: sizes and the lock, if any."""

    cores: int | None  # None: no `cores:` line, i.e. the container may use every host core
    memory_mb: int
    lock: str | None = None
    # `cores`/`memory` left under `[pve:pending]` (a failed hotplug on PVE 7); only a
    # config file shows this section, `pct config --current` does not.
    pending: tuple[tuple[str, str], ...] = ()

    def effective_cores(self, limits: HostLimits) -> int:
        return self.cores if self.cores is not None else limits.cores


class ConfigUnreadable(ValueError):
    pass


PROXMOX_DEFAULT_MEMORY_MB = 512


_PENDING_SECTION = "[pve:pending]"
PENDING_KEYS = ("cores", "memory")


def parse_config(text: str) -> ContainerConfig:
    """Parse `pct config --current` output or a config file: the main section's
    `key: value` lines; of the sections after it only `[pve:pending]` is looked at
    (snapshots describe old states)."""
    sections: dict[str, dict[str, str]] = {"": {}}
    current: dict[str, str] | None = sections[""]
    for line in text.splitlines():
        if line.startswith("["):
            name = line.strip().lower()
            current = sections.setdefault(name, {}) if name == _PENDING_SECTION else None
            continue
        key, sep, value = line.partition(":")
        if current is not None and sep and key and not key.startswith("#"):
            current.setdefault(key.strip(), value.strip())
    values, pending = sections[""], sections.get(_PENDING_SECTION, {})
    return ContainerConfig(
        cores=_parse_size(values, "cores"),
        memory_mb=_parse_size(values, "memory") or PROXMOX_DEFAULT_MEMORY_MB,
        lock=values.get("lock") or None,
        pending=tuple((key, pending[key][:32]) for key in PENDING_KEYS if key in pending),
    )


def _parse_size(values: dict[str, str], key: str) -> int | None:
    raw = values.get(key)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 12:
        raise ConfigUnreadable(f"`{key}` is not a whole number in pct config output")
    return int(raw)


# ------------------------------------------------------------------ host capacity

# Read-only and fixed: the host's memory and online CPUs, the same on a local or remote node.
HOST_PROBE: tuple[str, ...] = ("cat", "/proc/meminfo", "/sys/devices/system/cpu/online")
_MEMTOTAL = re.compile(r"^MemTotal:\s+(\d{1,15})\s+kB\s*$", re.MULTILINE)
_CPU_LIST = re.compile(r"^(\d{1,5}(?:-\d{1,5})?(?:,\d{1,5}(?:-\d{1,5})?)*)\s*$", re.MULTILINE)


def parse_host_probe(text: str) -> HostLimits:
    """Host limits from the output of HOST_PROBE (`/proc/meminfo` then the online CPU list)."""
    memory = _MEMTOTAL.search(text)
    cpus = _CPU_LIST.findall(text)
    if memory is None or not cpus:
        raise ConfigUnreadable("host probe output has no MemTotal line or no online CPU list")
    count = 0
    for part in cpus[-1].split(","):
        low, _, high = part.partition("-")
        count += int(high) - int(low) + 1 if high else 1
    return HostLimits(cores=count, memory_mb=int(memory.group(1)) // 1024)
