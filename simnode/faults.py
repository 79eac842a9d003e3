"""Fault injection for `pct set` (simulation only; no such thing exists in Proxmox).

`<root>/var/lib/simnode/faults.json` maps a vmid (as a string) to
`{"locked_times": N, "lock": "backup", "fail_times": N, "fail_message": "...",
"hang_times": N, "hang_seconds": S, "hotplug_fail_times": N, "hotplug_fail_option": "memory",
"hotplug_fail_message": "..."}`. Each `pct set` on that CT consumes one unit,
checked in this order: locked, fail, hang. A hotplug failure is consumed separately, by
a `pct set` on a running CT that hot-plugs that option: the cgroup write fails, and the
command behaves as the node's `pve_version` says (see simnode/settings.py).
Consumption happens under a flock on the fault file, so concurrent `pct set` calls
never consume the same unit twice.
"""

from __future__ import annotations

import os

from simnode import paths
from simnode.atomic import write_atomic
from simnode.locking import flocked

Value = int | float | str  # what a fault entry holds
Fault = tuple[str, str | float]  # ("locked", lock name) | ("fail", message) | ("hang", seconds)


def _lock_path(root: str) -> str:
    return paths.faults_path(root) + ".lock"


def _load(root: str) -> dict[str, dict[str, Value]]:
    import json  # lazy: most pct runs never open the fault file

    try:
        with open(paths.faults_path(root), encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _save(root: str, data: dict[str, dict[str, Value]]) -> None:
    import json

    write_atomic(paths.faults_path(root), json.dumps(data, indent=2, sort_keys=True) + "\n")


def inject(
    root: str | os.PathLike[str],
    vmid: int,
    *,
    locked_times: int = 0,
    lock: str = "backup",
    fail_times: int | None = None,
    fail_message: str | None = None,
    hang_seconds: float = 0.0,
    hang_times: int | None = None,
    hotplug_fail_option: str | None = None,
    hotplug_fail_times: int = 1,
    hotplug_fail_message: str | None = None,
) -> None:
    """Set (replace) the faults of one CT. `fail_times`/`hang_times` default to 1 when
    a `fail_message`/`hang_seconds` is given; `hotplug_fail_option` ("memory", "swap",
    "cpulimit" or "cpuunits") makes that many hotplugs of the option fail."""
    root_s = os.fspath(root)
    entry: dict[str, Value] = {}
    if locked_times:
        entry.update(locked_times=locked_times, lock=lock)
    if fail_message is not None:
        entry.update(fail_message=fail_message, fail_times=1 if fail_times is None else fail_times)
    if hang_seconds:
        entry.update(hang_seconds=hang_seconds, hang_times=1 if hang_times is None else hang_times)
    if hotplug_fail_option is not None:
        entry.update(hotplug_fail_option=hotplug_fail_option, hotplug_fail_times=hotplug_fail_times)
        if hotplug_fail_message is not None:
            entry["hotplug_fail_message"] = hotplug_fail_message
    os.makedirs(os.path.dirname(paths.faults_path(root_s)), exist_ok=True)
    with flocked(_lock_path(root_s)):
        data = _load(root_s)
        if entry:
            data[str(vmid)] = entry
        else:
            data.pop(str(vmid), None)
        _save(root_s, data)


def clear(root: str | os.PathLike[str], vmid: int | None = None) -> None:
    """Remove the faults of one CT, or all of them."""
    root_s = os.fspath(root)
    if not os.path.exists(paths.faults_path(root_s)):
        return
    with flocked(_lock_path(root_s)):
        data = _load(root_s) if vmid is not None else {}
        data.pop(str(vmid), None)
        _save(root_s, data)


def pending(root: str | os.PathLike[str]) -> dict[str, dict[str, Value]]:
    """What is left to consume (for tests)."""
    return _load(os.fspath(root))


def _take(entry: dict[str, Value]) -> Fault | None:
    """Consume one unit from `entry` in place; returns the fault to act out."""
    for kind, counter in (("locked", "locked_times"), ("fail", "fail_times"), ("hang", "hang_times")):
        left = int(entry.get(counter, 0))
        if left <= 0:
            continue
        entry[counter] = left - 1
        if kind == "locked":
            return ("locked", str(entry.get("lock", "backup")))
        if kind == "fail":
            return ("fail", str(entry.get("fail_message", "simulated failure")))
        return ("hang", float(entry.get("hang_seconds", 0.0)))
    return None


def consume(root: str, vmid: int) -> Fault | None:
    """Atomically take one fault unit for `vmid`, if any is left."""
    if not os.path.exists(paths.faults_path(root)):
        return None  # the common case costs one stat()
    with flocked(_lock_path(root)):
        data = _load(root)
        entry = data.get(str(vmid))
        if not entry:
            return None
        fault = _take(entry)
        if fault is None:
            return None
        _save_entry(root, data, vmid, entry)
        return fault


_COUNTERS = ("locked_times", "fail_times", "hang_times", "hotplug_fail_times")


def _save_entry(root: str, data: dict[str, dict[str, Value]], vmid: int, entry: dict[str, Value]) -> None:
    """Store a consumed entry; one with nothing left to consume is removed."""
    if not any(int(entry.get(c, 0)) > 0 for c in _COUNTERS):
        del data[str(vmid)]
    _save(root, data)


def consume_hotplug(root: str, vmid: int, option: str, default: str) -> str | None:
    """Take one hotplug failure of `option` for `vmid`: its text (`default` unless the
    fault names one), or None when no failure is due."""
    if not os.path.exists(paths.faults_path(root)):
        return None
    with flocked(_lock_path(root)):
        data = _load(root)
        entry = data.get(str(vmid))
        if not entry or entry.get("hotplug_fail_option") != option:
            return None
        left = int(entry.get("hotplug_fail_times", 0))
        if left <= 0:
            return None
        entry["hotplug_fail_times"] = left - 1
        message = str(entry.get("hotplug_fail_message", default))
        _save_entry(root, data, vmid, entry)
        return message
