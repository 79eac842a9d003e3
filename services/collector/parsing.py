"""Parsers for the files a collector reads: Proxmox container configs, cgroup v2, /proc.

Pure functions of the file's content. A counter that cannot be parsed comes back as
the reason "garbage", never as 0; optional figures (pressure, OOM kills) come back as None.
"""

from __future__ import annotations

from services.collector.raw import ConfValues, IntOrMissing

MAX_COUNTER = 2**63 - 1
_MAX_TAG_LENGTH = 64
_MAX_HOSTNAME_LENGTH = 255
_CONTROL = {chr(c) for c in range(32)} | {"\x7f"}


class ConfError(ValueError):
    """A container config file whose autoscaling keys cannot be trusted."""


# ---------------------------------------------------------------- cgroup v2 files


def parse_counter(data: bytes) -> IntOrMissing:
    """A file holding one non-negative integer, e.g. memory.current."""
    try:
        value = int(data)
    except ValueError:
        return "garbage"
    return value if 0 <= value <= MAX_COUNTER else "garbage"


def parse_limit(data: bytes) -> IntOrMissing:
    """memory.max: bytes, or the word "max" when the cgroup has no limit."""
    if data.strip() == b"max":
        return "no-limit"
    value = parse_counter(data)
    return "garbage" if value == 0 else value


def parse_keyed(data: bytes, key: bytes) -> IntOrMissing:
    """One `key value` line of a flat-keyed file (cpu.stat, memory.stat, memory.events)."""
    needle = key + b" "
    if data.startswith(needle):
        start = len(needle)
    else:
        found = data.find(b"\n" + needle)
        if found < 0:
            return "garbage"
        start = found + 1 + len(needle)
    end = data.find(b"\n", start)
    return parse_counter(data[start : end if end >= 0 else None])


def parse_pressure_some_avg10(data: bytes) -> float | None:
    """`some avg10=1.23 avg60=... total=...` from cpu.pressure or memory.pressure."""
    if not data.startswith(b"some avg10="):
        return None
    end = data.find(b" ", 11)
    try:
        value = float(data[11 : end if end >= 0 else len(data)])
    except ValueError:
        return None
    return value if 0.0 <= value <= 100.0 else None


def parse_oom_kills(data: bytes) -> int | None:
    value = parse_keyed(data, b"oom_kill")
    return value if isinstance(value, int) else None


def parse_cpuset_count(data: bytes) -> int | None:
    """How many CPUs `cpuset.cpus.effective` lists (`0-3,8` → 5); None when unparsable."""
    try:
        return parse_cpu_list_count(data.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


# ---------------------------------------------------------------- host files


def parse_cpu_list_count(text: str) -> int:
    """How many CPUs a kernel CPU list names, e.g. `0-15` → 16, `0-3,8-11` → 8."""
    count = 0
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        first = int(low)
        last = int(high) if high else first
        if first < 0 or last < first:
            raise ValueError(f"bad CPU range {part!r}")
        count += last - first + 1
    if count < 1:
        raise ValueError("no CPUs listed")
    return count


def parse_meminfo_total_mb(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            kib = int(fields[1])
            if len(fields) > 2 and fields[2] != "kB":
                raise ValueError(f"unexpected unit {fields[2]!r}")
            return kib // 1024
    raise ValueError("no MemTotal line")


# ---------------------------------------------------------------- Proxmox container config


def parse_conf(text: str) -> ConfValues:
    """`key: value` lines of the current config; `[snapshot]` sections and comments ignored."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("["):
            break  # everything below belongs to snapshots or pending changes
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition(":")
        if sep and key in _CONF_KEYS:
            values[key] = value.strip()
    try:
        return ConfValues(
            cores=_ranged_int(values, "cores", 1, 8192),
            memory_mb=_ranged_int(values, "memory", 16, 64 * 1024 * 1024) or 512,
            swap_mb=_ranged_int(values, "swap", 0, 64 * 1024 * 1024),
            cpulimit=_cpulimit(values.get("cpulimit")),
            hostname=_text(values.get("hostname"), _MAX_HOSTNAME_LENGTH),
            tags=_tags(values.get("tags")),
            lock=_text(values.get("lock"), _MAX_TAG_LENGTH),
        )
    except ValueError as exc:
        raise ConfError(str(exc)) from exc


_CONF_KEYS = frozenset({"cores", "memory", "swap", "cpulimit", "hostname", "tags", "lock"})


def _ranged_int(values: dict[str, str], key: str, low: int, high: int) -> int | None:
    raw = values.get(key)
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValueError(f"{key}: {raw[:40]!r} is not a whole number")
    number = int(raw)
    if not low <= number <= high:
        raise ValueError(f"{key}: {number} is outside {low}..{high}")
    return number


def _cpulimit(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"cpulimit: {raw[:40]!r} is not a number") from None
    if not 0 <= value <= 8192:
        raise ValueError(f"cpulimit: {value} is outside 0..8192")
    return value or None  # 0 means "no limit" in Proxmox


def _text(raw: str | None, limit: int) -> str | None:
    if not raw:
        return None
    cleaned = "".join("?" if ch in _CONTROL else ch for ch in raw)
    return cleaned[:limit]


def _tags(raw: str | None) -> tuple[str, ...]:
    # Proxmox writes tags separated by ';' and also accepts ',' and spaces.
    if not raw:
        return ()
    parts = raw.replace(",", ";").replace(" ", ";").split(";")
    return tuple(t for t in parts if t and len(t) <= _MAX_TAG_LENGTH and t.isprintable())
