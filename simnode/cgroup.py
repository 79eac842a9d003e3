"""cgroup v2 files of a running container under `/sys/fs/cgroup/lxc/<vmid>/`.

Formats are the kernel's (Documentation/admin-guide/cgroup-v2.rst). Limits follow
`PVE::LXC::Config::calculate_memory_constraints` and `PVE::CGroup::change_memory_limit`.
Every write is atomic so a concurrent reader never sees a torn file.
"""

from __future__ import annotations

import os

from simnode import paths
from simnode.atomic import write_atomic

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
    """The limit files a container's config implies (defaults: memory 512, swap 512)."""
    memory = _int(keys, "memory", 512)
    swap = _int(keys, "swap", 512)
    cores = _int(keys, "cores", 0) or None
    return {
        "memory.max": f"{memory * MIB}\n",
        "memory.high": f"{memory_high(memory)}\n",
        "memory.swap.max": f"{swap * MIB}\n",
        "cpuset.cpus": f"{cpuset_for(cores, host_cpus)}\n",
        "cpu.max": f"{cpu_max_for(_cpulimit(keys))}\n",
        "cpu.weight": f"{_int(keys, 'cpuunits', 100)}\n",
    }


def apply_limits(root: str, vmid: int, keys: dict[str, str], host_cpus: int) -> None:
    """Hot-apply a config to a running container's cgroup (no-op when stopped)."""
    directory = paths.cgroup_dir(root, vmid)
    if not os.path.isdir(directory):
        return
    for name, content in limit_files(keys, host_cpus).items():
        write_atomic(os.path.join(directory, name), content)


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


def remove(root: str, vmid: int) -> None:
    """Remove a stopped container's cgroup, even if a writer races us."""
    import shutil  # only `pct stop` needs it; keep pct startup lean

    directory = paths.cgroup_dir(root, vmid)
    for _ in range(20):
        shutil.rmtree(directory, ignore_errors=True)
        if not os.path.exists(directory):
            return
