"""`collector --once`: two reads an interval apart, one sample out, no broker needed."""

from __future__ import annotations

from collections.abc import Callable

from services.collector.cycle import Collector
from shared.clock import Clock
from shared.models import NodeSample


def collect_once(
    collector: Collector, clock: Clock, sleep: Callable[[float], None], interval_s: float
) -> NodeSample:
    """The second of two cycles: the first only primes the CPU counters."""
    collector.collect(clock.now(), clock.monotonic())
    sleep(interval_s)
    return collector.collect(clock.now(), clock.monotonic()).sample


def summary_lines(sample: NodeSample) -> list[str]:
    """A terminal-friendly view of a sample, one container per line."""
    host = sample.host
    lines = [
        f"node {sample.node} ({sample.source}): {host.cores} cores, {host.memory_mb} MB; "
        f"running containers hold {host.allocated_cores_running} cores, "
        f"{host.allocated_memory_mb_running} MB",
        f"{'vmid':>10} {'status':<8} {'cores':>5} {'memory':>8} {'cpu %':>8} {'mem %':>8}",
    ]
    for c in sample.containers:
        cpu = f"{c.cpu_pct:.1f}" if c.cpu_pct is not None else (c.cpu_missing or "-")
        mem = f"{c.memory_pct:.1f}" if c.memory_pct is not None else (c.memory_missing or "-")
        lines.append(f"{c.vmid:>10} {c.status:<8} {c.cores:>5} {c.memory_mb:>8} {cpu:>8} {mem:>8}")
    return lines
