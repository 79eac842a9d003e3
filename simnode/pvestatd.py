"""A simulated pvestatd: what pve-manager's `PVE/Service/pvestatd.pm` does for containers.

Every `pvestatd_period_s` (pvestatd's `$updatetime`, 10 s) one pass (`update_status`):
1. `update_lxc_status`: `PVE::LXC::vmstatus` for every container, broadcast as the RRD
   entry that `pvesh get /cluster/resources` reads (simnode/pvesh.py). CPU is
   `Δ(user+system ms) / (Δt · host CPUs · 1000) · host CPUs / cpus` with
   `cpus = cores || cpulimit || host CPUs`; the first pass that sees a container
   (no previous reading) reports 0. `mem` is memory.current − memory.stat `file`.
2. `rebalance_lxc_containers`: a container whose cpuset does not hold `cores` CPUs
   (a `pct set -cores` that only rewrote the config) gets CPUs added (lowest free ids
   first) or dropped (the last ones), written to `lxc/<vmid>/ns` then `lxc/<vmid>`;
   then each balanced container's CPUs move to less-used ones. Containers with a raw
   `lxc.cgroup2.cpuset.cpus` (or `lxc.cgroup.cpuset.cpus`) line are left alone.

The broadcast status and the previous CPU readings live in
`<root>/var/lib/simnode/pvestatd.json`, so a pass can run in any process (the workload
driver runs them on its clock; tests may call `run_pass` directly).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from simnode import cgroup, conffile, paths
from simnode.atomic import read_text, write_atomic

RAW_CPUSET_KEYS = ("lxc.cgroup.cpuset.cpus", "lxc.cgroup2.cpuset.cpus")


def load_state(root: str) -> dict[str, Any]:
    try:
        data = json.loads(read_text(paths.pvestatd_state_path(root)))
    except (FileNotFoundError, ValueError):
        return {"vms": {}, "last": {}}
    return data if isinstance(data, dict) else {"vms": {}, "last": {}}


def run_pass(root: str | os.PathLike[str], now: float) -> None:
    """One pvestatd cycle at monotonic time `now` (seconds): status, then rebalance."""
    root_s = os.fspath(root)
    state = load_state(root_s)
    host_cpus = paths.host_cpu_count(root_s)
    confs = _configs(root_s)
    last: dict[str, dict[str, float]] = state.get("last", {})
    vms = {str(vmid): _vmstatus(root_s, vmid, keys, host_cpus, last, now) for vmid, keys in confs.items()}
    rebalance(root_s, {vmid: c for vmid, c in confs.items()}, host_cpus)
    state = {"vms": vms, "last": last, "updated_at": time.time()}
    write_atomic(paths.pvestatd_state_path(root_s), json.dumps(state, sort_keys=True) + "\n")


def _configs(root: str) -> dict[int, conffile.Section]:
    directory = paths.lxc_dir(root)
    out: dict[int, conffile.Section] = {}
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        stem, _, ext = name.partition(".")
        if ext != "conf" or not stem.isdigit():
            continue
        try:
            out[int(stem)] = conffile.parse(read_text(os.path.join(directory, name)), int(stem)).main
        except OSError:
            continue
    return out


def cpus_of(keys: dict[str, str], host_cpus: int) -> float:
    """`$d->{cpus} = $conf->{cores} || $conf->{cpulimit} || host CPUs`."""
    for key in ("cores", "cpulimit"):
        try:
            value = float(keys.get(key) or 0)
        except ValueError:
            value = 0.0
        if value:
            return value
    return float(host_cpus)


def _number(value: float) -> int | float:
    """Perl's `$x + 0`: an integral value prints as an integer, 1.5 as 1.5."""
    return int(value) if float(value).is_integer() else value


def _vmstatus(
    root: str,
    vmid: int,
    section: conffile.Section,
    host_cpus: int,
    last: dict[str, dict[str, float]],
    now: float,
) -> dict[str, Any]:
    keys = section.keys
    directory = paths.cgroup_dir(root, vmid)
    running = os.path.isdir(directory)
    entry: dict[str, Any] = {
        "name": "".join((keys.get("hostname") or f"CT{vmid}").split()),
        "status": "running" if running else "stopped",
        "template": 1 if keys.get("template") == "1" else 0,
        "maxcpu": _number(cpus_of(keys, host_cpus)),
        "maxmem": int(keys.get("memory") or 512) * cgroup.MIB,
        "maxdisk": 0,
        "uptime": 0,
    }
    if not running:
        return entry  # RRD: cpu and mem undefined, read back as 0
    try:
        stat = cgroup.parse_kv(read_text(os.path.join(directory, "cpu.stat")))
        mem = cgroup.parse_kv(read_text(os.path.join(directory, "memory.stat")))
        current = int(read_text(os.path.join(directory, "memory.current")))
    except (OSError, ValueError):
        return entry
    entry["mem"] = current - mem.get("file", 0)
    entry["uptime"] = int(max(time.time() - _started(root, vmid), 0))
    used_ms = stat.get("user_usec", 0) // 1000 + stat.get("system_usec", 0) // 1000
    old = last.get(str(vmid))
    if old is None:
        last[str(vmid)] = {"time": now, "used": used_ms, "cpu": 0.0}
        entry["cpu"] = 0
        return entry
    delta_ms = (now - old["time"]) * host_cpus * 1000.0
    if delta_ms > 1000.0:
        cpu = ((used_ms - old["used"]) / delta_ms * host_cpus) / entry["maxcpu"]
        last[str(vmid)] = {"time": now, "used": used_ms, "cpu": cpu}
    else:
        cpu = old["cpu"]
    entry["cpu"] = cpu
    return entry


def _started(root: str, vmid: int) -> float:
    try:
        return float(read_text(paths.start_time_path(root, vmid)))
    except (OSError, ValueError):
        return time.time()


# ----------------------------------------------------------------------------- rebalance


def _read_set(directory: str) -> list[int]:
    return cgroup.parse_cpu_list(read_text(os.path.join(directory, "cpuset.cpus")))


def _write_set(directory: str, cpus: list[int]) -> None:
    text = cgroup.format_cpu_list(cpus) + "\n"
    for name in ("cpuset.cpus", "cpuset.cpus.effective"):
        write_atomic(os.path.join(directory, name), text)


def _modify(directory: str, new: list[int], all_cpus: list[int]) -> None:
    """Allow all CPUs on the outer cgroup, set the inner `ns`, then the outer too."""
    _write_set(directory, all_cpus)
    _write_set(os.path.join(directory, "ns"), new)
    _write_set(directory, new)


def _enacted(members: list[int], cores: int, allowed: list[int]) -> list[int]:
    """The cpuset holding `cores` CPUs: the last ones dropped, or the lowest free ones added."""
    if cores < len(members):
        return members[:cores]
    new = list(members)
    for cpu in allowed:
        if len(new) >= cores:
            break
        if cpu not in new:
            new.append(cpu)
    return sorted(new)


def _spread(cpus: list[int], allowed: list[int], count: list[int]) -> list[int]:
    """Move each CPU to one used by at least two fewer containers (`$find_best_cpu`)."""
    rest = [c for c in allowed if c not in cpus]
    moved: list[int] = []
    for cpu in cpus:
        best, cost = cpu, count[cpu]
        for candidate in rest:
            if count[candidate] < cost - 1:
                best, cost = candidate, count[candidate]
        if best != cpu:
            count[best] += 1
            count[cpu] -= 1
        moved.append(best)
    return sorted(set(moved))


def rebalance(root: str, confs: dict[int, conffile.Section], host_cpus: int) -> None:
    """`rebalance_lxc_containers`, step for step."""
    allowed = list(range(host_cpus))
    count = [0] * host_cpus
    balanced: list[tuple[str, list[int]]] = []
    for vmid in sorted(confs, key=str):  # Perl's `sort keys`: string order
        directory = paths.cgroup_dir(root, vmid)
        if not os.path.isdir(os.path.join(directory, "ns")):
            continue  # not running (or an old-style container)
        try:
            members = _read_set(directory)
        except (OSError, ValueError):
            continue
        section = confs[vmid]
        if not any(key in RAW_CPUSET_KEYS for key, _ in section.lxc):
            cores = min(int(section.keys.get("cores") or 0) or host_cpus, host_cpus)
            new = _enacted(members, cores, allowed)
            if new != members:
                members = new
                _modify(directory, new, allowed)
            if section.keys.get("cores") and cores != host_cpus:
                balanced.append((directory, new))
        for cpu in members:
            if cpu < host_cpus:
                count[cpu] += 1
    for directory, cpus in balanced:
        moved = _spread(cpus, allowed, count)
        if moved != cpus:
            _modify(directory, moved, allowed)
