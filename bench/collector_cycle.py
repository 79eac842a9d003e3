"""Benchmark: one collector cycle on a simulated node of 1,000 containers, against the
original's way of reading them (one `pct config` and one `pct status` process per container).

    .venv/bin/python bench/collector_cycle.py [--containers N] [--runs R] [--pct-subset K]

The tree is built by simnode in a temporary directory, every container running. The cycle
measured is `Collector.collect()`: list configs and cgroups, read every file, compute the
percentages, build and validate the NodeSample (publishing is not included). Processes
started during the measured cycles are counted by wrapping subprocess.Popen, os.fork and
os.posix_spawn. The pct comparison runs the simulated `<root>/usr/sbin/pct` for a subset
of containers, both one after the other and 8 at a time (the original gathers them
concurrently), and extrapolates per container from the faster of the two.
The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.collector.cycle import Collector
from services.collector.sampling import SamplingSettings
from services.collector.sources.cgroup import CgroupSource
from shared.clock import SystemClock
from shared.codec import encode
from simnode.tree import ContainerSpec, SimNode, build_node

FIRST_VMID = 1000


@contextmanager
def counting_processes() -> Iterator[list[int]]:
    """Count every process started inside the block, however it is started."""
    count = [0]
    originals: dict[str, Any] = {
        "popen_init": subprocess.Popen.__init__,
        "fork": os.fork,
        "posix_spawn": os.posix_spawn,
    }

    def counted(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return real(*args, **kwargs)

        return wrapper

    subprocess.Popen.__init__ = counted("popen", originals["popen_init"])  # type: ignore[method-assign]
    os.fork = counted("fork", originals["fork"])
    os.posix_spawn = counted("posix_spawn", originals["posix_spawn"])
    try:
        yield count
    finally:
        subprocess.Popen.__init__ = originals["popen_init"]  # type: ignore[method-assign]
        os.fork = originals["fork"]
        os.posix_spawn = originals["posix_spawn"]


def build(root: Path, containers: int) -> SimNode:
    specs = [
        ContainerSpec(FIRST_VMID + i, f"ct{i}", cores=1 + i % 4, memory_mb=512 * (1 + i % 8))
        for i in range(containers)
    ]
    node = build_node(root, node_name="pve1", host_cores=64, host_memory_mb=512 * 1024, containers=specs)
    # Steady state: on a real node most configs were last edited long ago. A config
    # younger than 2 s is re-read every cycle (mtimes in /etc/pve have 1 s resolution).
    old = time.time() - 60
    for conf in (root / "etc" / "pve" / "lxc").glob("*.conf"):
        os.utime(conf, (old, old))
    return node


def measure_cycle(root: Path, runs: int, kept: bool = False) -> dict[str, float]:
    """`kept`: the cgroup files stay open between cycles, as on the kernel's cgroupfs (the
    tree's own device is declared a cgroupfs; its files are not rewritten meanwhile)."""
    devices = frozenset({os.stat(root / "sys/fs/cgroup/lxc").st_dev}) if kept else frozenset()
    source = CgroupSource(root, cgroup_devices=devices)
    collector = Collector(source, node="pve1", interval_s=10, settings=SamplingSettings())
    clock = SystemClock()
    for _ in range(2):  # warm-up: first-sample cycle, file system caches
        collector.collect(clock.now(), clock.monotonic())
    walls: list[float] = []
    cpus: list[float] = []
    with counting_processes() as spawned:
        for _ in range(runs):
            wall, cpu = time.perf_counter(), time.process_time()
            result = collector.collect(clock.now(), clock.monotonic())
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
    assert len(result.sample.containers) > 0
    encode_cpu = []
    for _ in range(runs):
        cpu = time.process_time()
        encode(result.sample)
        encode_cpu.append(time.process_time() - cpu)
    source.close()
    return {
        "encode_ms": statistics.median(encode_cpu) * 1000,
        "cycle_ms": statistics.median(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "best_ms": min(walls) * 1000,
        "subprocesses": spawned[0],
        "readings": len(result.sample.containers),
    }


def pct_for(pct: str, vmid: int) -> None:
    for action in ("config", "status"):
        done = subprocess.run([pct, action, str(vmid)], capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pct {action} {vmid} failed: {done.stderr.decode(errors='replace')}")


def measure_pct(node: SimNode, subset: int) -> dict[str, float]:
    pct = str(node.pct_path)
    vmids = [FIRST_VMID + i for i in range(subset)]
    start = time.perf_counter()
    for vmid in vmids:
        pct_for(pct, vmid)
    sequential = (time.perf_counter() - start) / subset
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda vmid: pct_for(pct, vmid), vmids))
    concurrent = (time.perf_counter() - start) / subset
    return {"sequential_ms": sequential * 1000, "concurrent_ms": concurrent * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--pct-subset", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as directory:
        node = build(Path(directory), args.containers)
        # A running node's configs were written long ago; the collector trusts its cached
        # parse of a config only once the file is older than /etc/pve's 1 s mtime resolution.
        time.sleep(2.5)
        cycle = measure_cycle(node.root, args.runs)
        kept = measure_cycle(node.root, args.runs, kept=True)
        pct = measure_pct(node, min(args.pct_subset, args.containers))
    per_container = min(pct["sequential_ms"], pct["concurrent_ms"])
    speedup = per_container * args.containers / cycle["cycle_ms"]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(
        f"collector cycle, {args.containers} running containers, median of {args.runs}: "
        f"{cycle['cycle_ms']:.1f} ms wall (best {cycle['best_ms']:.1f}), {cycle['cpu_ms']:.1f} ms CPU, "
        f"{cycle['subprocesses']} processes started"
    )
    # At interval_s 1 the collector does one cycle and one encode per second (the publish
    # itself is a socket write); as a share of one core:
    share = (kept["cpu_ms"] + kept["encode_ms"]) / 10
    print(
        f"cgroup files kept open (kernel cgroupfs): {kept['cycle_ms']:.1f} ms wall, "
        f"{kept['cpu_ms']:.1f} ms CPU ({cycle['cpu_ms'] / kept['cpu_ms']:.2f}x less); encoding the "
        f"sample {kept['encode_ms']:.1f} ms; at interval_s 1: {share:.1f} % of one core"
    )
    print(
        f"original's way, measured on {min(args.pct_subset, args.containers)} containers and "
        f"extrapolated: {pct['sequential_ms']:.1f} ms per container one by one, "
        f"{pct['concurrent_ms']:.1f} ms with 8 at a time -> "
        f"{per_container * args.containers / 1000:.1f} s for {args.containers} containers"
    )
    print(
        json.dumps(
            {
                "containers": args.containers,
                "cycle_ms": round(cycle["cycle_ms"], 2),
                "cpu_ms": round(cycle["cpu_ms"], 2),
                "kept_cycle_ms": round(kept["cycle_ms"], 2),
                "kept_cpu_ms": round(kept["cpu_ms"], 2),
                "encode_ms": round(kept["encode_ms"], 2),
                "core_share_1s_pct": round(share, 2),
                "subprocesses": cycle["subprocesses"],
                "per_container_pct_ms": round(per_container, 2),
                "speedup": round(speedup, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
