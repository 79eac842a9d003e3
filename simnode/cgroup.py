"""cgroup v2 files of a running container under `/sys/fs/cgroup/lxc/<vmid>/`.

Formats are the kernel's (Documentation/admin-guide/cgroup-v2.rst). Limits follow
`PVE::LXC::Config::calculate_memory_constraints` and `PVE::CGroup::change_memory_limit`,
`change_cpu_quota`, `change_cpu_shares`. As on a real node the container's processes
live in the inner `lxc/<vmid>/ns` cgroup; statistics and limits are on `lxc/<vmid>`.
A `memory.max` below what the container holds is enforced as the kernel does
(`enforce_memory_max`): page cache reclaimed, anon swapped out as far as
`memory.swap.max` allows, then the biggest process OOM-killed.
Every write is atomic so a concurrent reader never sees a torn file.
"""

from __future__ import annotations

import contextlib
import os

from simnode import paths
from simnode.atomic import append_line, write_atomic

MIB = 1024 * 1024
CPU_PERIOD_US = 100_000

CPU_STAT_KEYS = (
    "usage_usec",
    "user_usec",
    "system_usec",
    "nr_periods",
    "nr_throttled",
    "throttled_usec",
    "nr_bursts",
    "burst_usec",
)
MEMORY_STAT_KEYS = (
    "anon",
    "file",
    "kernel",
    "kernel_stack",
    "pagetables",
    "sec_pagetables",
    "percpu",
    "sock",
    "vmalloc",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "swapcached",
    "anon_thp",
    "file_thp",
    "shmem_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "slab",
    "workingset_refault_anon",
    "workingset_refault_file",
    "workingset_activate_anon",
    "workingset_activate_file",
    "workingset_restore_anon",
    "workingset_restore_file",
    "workingset_nodereclaim",
    "pgscan",
    "pgsteal",
    "pgfault",
    "pgmajfault",
    "pgrefill",
    "pgactivate",
    "pgdeactivate",
)
MEMORY_EVENT_KEYS = ("low", "high", "max", "oom", "oom_kill", "oom_group_kill")


def format_kv(values: dict[str, int], keys: tuple[str, ...]) -> str:
    return "".join(f"{k} {values.get(k, 0)}\n" for k in keys)


def parse_kv(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def format_psi(some: tuple[float, float, float, int], full: tuple[float, float, float, int]) -> str:
    """PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and a `full` line."""
    lines = []
    for name, (a10, a60, a300, total) in (("some", some), ("full", full)):
        lines.append(f"{name} avg10={a10:.2f} avg60={a60:.2f} avg300={a300:.2f} total={total}\n")
    return "".join(lines)


def memory_high(memory_mb: int) -> int:
    """memory.high is ~1016/1024 of max, or max - 128 MiB from 16 GiB (pve-container)."""
    if memory_mb >= 16 * 1024:
        return (memory_mb - 128) * MIB
    return memory_mb * 1024 * 1016


def cpuset_for(cores: int | None, host_cpus: int) -> str:
    n = min(cores or host_cpus, host_cpus)
    return "0" if n <= 1 else f"0-{n - 1}"


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list such as `0-3,8,10-11` as sorted CPU ids."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return sorted(cpus)


def format_cpu_list(cpus: list[int]) -> str:
    """Sorted CPU ids as the kernel prints them (`PVE::CpuSet::short_string`): `0-2,5`."""
    out: list[str] = []
    ids = sorted(set(cpus))
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


def cpu_max_for(cpulimit: float) -> str:
    if cpulimit <= 0:
        return f"max {CPU_PERIOD_US}"
    return f"{round(cpulimit * CPU_PERIOD_US)} {CPU_PERIOD_US}"


def _int(keys: dict[str, str], name: str, default: int) -> int:
    try:
        return int(keys.get(name, default))
    except ValueError:
        return default


def _cpulimit(keys: dict[str, str]) -> float:
    try:
        return float(keys.get("cpulimit", "0"))
    except ValueError:
        return 0.0


def limit_files(keys: dict[str, str], host_cpus: int) -> dict[str, str]:
    """The limit files a container's config implies at start (defaults: memory 512,
    swap 0 as `vmstatus` has it, cpu.weight the kernel's 100 when cpuunits is unset)."""
    memory = _int(keys, "memory", 512)
    swap = _int(keys, "swap", 0)
    cores = _int(keys, "cores", 0) or None
    cpuset = f"{cpuset_for(cores, host_cpus)}\n"
    return {
        "memory.max": f"{memory * MIB}\n",
        "memory.high": f"{memory_high(memory)}\n",
        "memory.swap.max": f"{swap * MIB}\n",
        "cpuset.cpus": cpuset,
        "cpuset.cpus.effective": cpuset,
        "cpu.max": f"{cpu_max_for(_cpulimit(keys))}\n",
        "cpu.weight": f"{_int(keys, 'cpuunits', 100)}\n",
    }


def _write(root: str, vmid: int, name: str, content: str) -> None:
    write_atomic(os.path.join(paths.cgroup_dir(root, vmid), name), content)


def _read(root: str, vmid: int, name: str) -> str:
    with open(os.path.join(paths.cgroup_dir(root, vmid), name), encoding="utf-8") as fh:
        return fh.read()


def change_memory_limit(root: str, vmid: int, memory_mb: int | None, swap_mb: int | None) -> None:
    """`PVE::CGroup::change_memory_limit` on v2: memory.swap.max only when swap is given,
    then memory.high and memory.max; the kernel then enforces the new limit."""
    if swap_mb is not None:
        _write(root, vmid, "memory.swap.max", f"{swap_mb * MIB}\n")
    if memory_mb is not None:
        _write(root, vmid, "memory.high", f"{memory_high(memory_mb)}\n")
        _write(root, vmid, "memory.max", f"{memory_mb * MIB}\n")
        enforce_memory_max(root, vmid)


def change_cpu_quota(root: str, vmid: int, cpulimit: float | None) -> None:
    """`change_cpu_quota`: `int(100000*cpulimit) 100000`, or `max` when cpulimit is deleted."""
    _write(root, vmid, "cpu.max", f"{cpu_max_for(cpulimit or 0.0)}\n")


def change_cpu_shares(root: str, vmid: int, cpuunits: int | None) -> None:
    """`change_cpu_shares` on v2: cpu.weight, 100 when the option is deleted."""
    _write(root, vmid, "cpu.weight", f"{100 if cpuunits is None else cpuunits}\n")


# Processes of a simulated container: a few small system processes (init, getty, cron)
# holding BASE_ANON_MB in all, and the service itself holding the rest of the anon memory.
BASE_ANON_MB = 16
SERVICE_NAME = "service"


def enforce_memory_max(root: str, vmid: int) -> int:
    """Bring a container within its memory.max as the kernel does: reclaim page cache,
    swap anon out while memory.swap.max allows, then OOM-kill the biggest process.
    Returns the number of processes killed (0 or 1)."""
    limit_text = _read(root, vmid, "memory.max").strip()
    if limit_text == "max":
        return 0
    limit = int(limit_text)
    stat = parse_kv(_read(root, vmid, "memory.stat"))
    anon, file_b = stat.get("anon", 0), stat.get("file", 0)
    if anon + file_b <= limit:
        return 0
    events = parse_kv(_read(root, vmid, "memory.events"))
    events["max"] = events.get("max", 0) + 1
    file_b = max(min(file_b, limit - anon), 0)
    swap = int(_read(root, vmid, "memory.swap.current") or 0)
    swap_max_text = _read(root, vmid, "memory.swap.max").strip()
    swap_room = max((1 << 62 if swap_max_text == "max" else int(swap_max_text)) - swap, 0)
    out = min(max(anon - limit, 0), swap_room)
    anon, swap = anon - out, swap + out
    killed = 0
    if anon > limit:
        victim = max(anon - BASE_ANON_MB * MIB, 0)
        anon -= victim
        killed = 1
        events["oom"] = events.get("oom", 0) + 1
        events["oom_kill"] = events.get("oom_kill", 0) + 1
        _log_kill(root, vmid, events["oom_kill"], victim)
    write_memory(root, vmid, anon, file_b)
    _write(root, vmid, "memory.swap.current", f"{swap}\n")
    _write(root, vmid, "memory.events", format_kv(events, MEMORY_EVENT_KEYS))
    return killed


def write_memory(root: str, vmid: int, anon: int, file_b: int) -> None:
    """memory.stat (kernel keys, active/inactive split) and memory.current = anon + file."""
    stat = {
        "anon": anon,
        "file": file_b,
        "active_anon": anon // 2,
        "inactive_anon": anon - anon // 2,
        "active_file": file_b // 2,
        "inactive_file": file_b - file_b // 2,
    }
    _write(root, vmid, "memory.stat", format_kv(stat, MEMORY_STAT_KEYS))
    _write(root, vmid, "memory.current", f"{anon + file_b}\n")


def _log_kill(root: str, vmid: int, count: int, rss: int) -> None:
    """The kernel's OOM report, one line per kill, in `<root>/var/log/simnode/oom.log`."""
    import time

    pid = 1000 + count  # the service's pid in the container: a new one after each restart
    line = (
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime())}+00:00 lxc/{vmid} "
        f"Memory cgroup out of memory: Killed process {pid} ({SERVICE_NAME}) "
        f"anon-rss:{rss // 1024}kB, file-rss:0kB, shmem-rss:0kB\n"
    )
    append_line(paths.oom_log_path(root), line)


def create(root: str, vmid: int, keys: dict[str, str], host_cpus: int) -> None:
    """Create the cgroup of a freshly started container: limits set, counters at zero."""
    directory = paths.cgroup_dir(root, vmid)
    os.makedirs(directory, exist_ok=True)
    zero_psi = format_psi((0.0, 0.0, 0.0, 0), (0.0, 0.0, 0.0, 0))
    files = {
        "cpu.stat": format_kv({}, CPU_STAT_KEYS),
        "memory.current": "0\n",
        "memory.swap.current": "0\n",
        "memory.stat": format_kv({}, MEMORY_STAT_KEYS),
        "memory.events": format_kv({}, MEMORY_EVENT_KEYS),
        "cpu.pressure": zero_psi,
        "memory.pressure": zero_psi,
        "io.pressure": zero_psi,
        "cgroup.procs": "",
        **limit_files(keys, host_cpus),
    }
    for name, content in files.items():
        write_atomic(os.path.join(directory, name), content)
    # The container's processes run in the inner cgroup; pvestatd writes its cpuset first.
    os.makedirs(os.path.join(directory, "ns"), exist_ok=True)
    for name in ("cpuset.cpus", "cpuset.cpus.effective"):
        write_atomic(os.path.join(directory, "ns", name), files["cpuset.cpus"])
    started = paths.start_time_path(root, vmid)
    os.makedirs(os.path.dirname(started), exist_ok=True)
    import time  # only `pct start` needs it

    write_atomic(started, f"{time.time():.3f}\n")


def remove(root: str, vmid: int) -> None:
    """Remove a stopped container's cgroup, even if a writer races us."""
    import shutil  # only `pct stop` needs it; keep pct startup lean

    directory = paths.cgroup_dir(root, vmid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(paths.start_time_path(root, vmid))
    for _ in range(20):
        shutil.rmtree(directory, ignore_errors=True)
        if not os.path.exists(directory):
            return
