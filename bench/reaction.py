"""Reaction benchmark: from a load step to the resized container, end to end, in seconds.

A simulated node with N containers (simnode), a private nats-server on 127.0.0.1 and the
real services as separate processes (`lxc-autoscale collector`, `decider`, `actuator`,
as `make demo` runs them). The workload driver runs in this process so the step instants
are known exactly: a few "stepping" containers go from a steady 50 % to saturation
(3 cores of demand on 2), hold, drop to 0.1 core, hold, and so on; their steps are spread
over the phase of the collector's interval. The other containers are idle at the tier's
minimum (read by the collector every cycle, never resized).

Per step it measures the time from the step to (a) the `applied` event of the change in
that direction, received on the events stream, and (b) the moment the container's config
file shows the new size (polled every 50 ms). Per interval setting it reports p50, p99 and
max of (a) and (b), the collector's CPU time as a share of one core (from /proc, over the
measured part of the run) and the simulated pct calls per handled intent (simnode's pct
log). `--pct-startup-s` makes every simulated pct call wait that long before it starts,
to stand for the real pct's start-up (see docs/performance.md for the figure's source).

    .venv/bin/python bench/reaction.py [--containers 100,1000] [--intervals 10,5,2,1]
        [--cycles 2] [--stepping 4] [--pct-startup-s 0.3] [--quick]

The last line is JSON: the figures of 100 containers at interval 2 s when that pair was
run (else of the last pair), with every pair's figures under "results".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from cli.processes import ProcessGroup  # noqa: E402
from cli.setup import actuator_consumers  # noqa: E402
from shared import subjects  # noqa: E402
from shared.codec import decode  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.embedded_broker import start_broker  # noqa: E402
from shared.models import ScaleEvent  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402
from simnode import pvestatd  # noqa: E402
from simnode.pct import STARTUP_ENV  # noqa: E402
from simnode.tree import ContainerSpec, SimNode, build_node  # noqa: E402
from simnode.workload import LoadProfile, Phase, WorkloadDriver  # noqa: E402

NODE = "pve1"
FIRST_VMID = 1000
HOST_CORES = 128
HOST_MEMORY_MB = 1024 * 1024
STEP_CORES, STEP_MEMORY_MB = 2, 2048
BASE_DEMAND, HIGH_DEMAND, LOW_DEMAND = 1.0, 3.0, 0.1  # cores: 50 %, saturated, 5 % of 2 cores
MEMORY_DEMAND_MB = 1000  # about half of 2048 MB: memory stays inside its band throughout
DRIVER_TICK_S = 0.1
CONFIG_POLL_S = 0.05
SETTLE_PASSES = 3


@dataclass(frozen=True)
class Step:
    vmid: int
    at: float  # monotonic seconds
    direction: str  # "up" or "down"
    until: float  # the container's next step (a reaction must come before it)


@dataclass
class Observed:
    applied: list[tuple[float, int, str]] = field(default_factory=list)  # (time, vmid, up/down)
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    cores: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # vmid -> (time, cores)
    samples: int = 0


def policy_config(args: argparse.Namespace, interval_s: float, node: SimNode) -> dict[str, Any]:
    """The project's default policy, except the scale-down window (a flag) and a node big
    enough that admission never refuses (1,000 containers hold 1,000 cores)."""
    return {
        "DEFAULT": {
            "cpu_upper_threshold": 80,
            "cpu_lower_threshold": 20,
            "memory_upper_threshold": 80,
            "memory_lower_threshold": 20,
            "min_cores": 1,
            "max_cores": 8,
            "min_memory": 512,
            "max_memory": 8192,
            "scale_down_stabilization_s": args.stabilization_s,
            "overcommit_ratio": 10,
            "off_peak_start": 0,
            "off_peak_end": 0,
        },
        "COLLECTOR": {"node": NODE, "interval_s": interval_s, "source": "sim", "root": str(node.root)},
        "DECIDER": {"intent_ttl_s": 60},
        "ACTUATOR": {
            "node": NODE,
            "pct_path": str(node.pct_path),
            "root": str(node.root),
            "read_config": args.read_config,
            "host_cores": HOST_CORES,
            "host_memory_mb": HOST_MEMORY_MB,
        },
    }


def build(root: Path, containers: int, stepping: int) -> SimNode:
    specs = [
        ContainerSpec(FIRST_VMID + i, f"step{i}", STEP_CORES, STEP_MEMORY_MB)
        if i < stepping
        else ContainerSpec(FIRST_VMID + i, f"idle{i}", 1, 512)
        for i in range(containers)
    ]
    node = build_node(root, node_name=NODE, host_cores=HOST_CORES, host_memory_mb=HOST_MEMORY_MB,
                      containers=specs)  # fmt: skip
    # A node that has been running: pvestatd has spread the cpusets (every container starts
    # on CPUs 0-(cores-1); its first passes move them, and can leave a crowded container
    # with fewer CPUs than cores for a pass, as Proxmox's rebalance does).
    for settle in range(SETTLE_PASSES):
        pvestatd.run_pass(node.root, -10.0 * (SETTLE_PASSES - settle))  # before the driver's clock 0
    return node


def schedule(stepping: int, cycles: int, interval_s: float, lead_s: float) -> tuple[list[Step], float]:
    """Step instants relative to the driver's start, spread over the interval's phase;
    returns the steps (times relative, filled in later) and the run's length."""
    hold = max(10.0, 3 * interval_s + 4)
    slots = stepping * cycles
    steps: list[Step] = []
    for i in range(stepping):
        for c in range(cycles):
            phase = interval_s * ((c * stepping + i) % slots) / slots
            up = lead_s + c * 2 * hold + phase
            steps.append(Step(FIRST_VMID + i, up, "up", up + hold))
            steps.append(Step(FIRST_VMID + i, up + hold, "down", up + 2 * hold))
    return steps, lead_s + cycles * 2 * hold + interval_s


def profiles(steps: list[Step], stepping: int) -> dict[int, LoadProfile]:
    out = {}
    for i in range(stepping):
        vmid = FIRST_VMID + i
        mine = sorted((s for s in steps if s.vmid == vmid), key=lambda s: s.at)
        phases = [Phase(mine[0].at, BASE_DEMAND, MEMORY_DEMAND_MB)]
        for step in mine:
            demand = HIGH_DEMAND if step.direction == "up" else LOW_DEMAND
            phases.append(Phase(step.until - step.at, demand, MEMORY_DEMAND_MB))
        out[vmid] = LoadProfile(tuple(phases))
    return out


def read_cores(node: SimNode, vmid: int) -> int | None:
    try:
        text = node.conf_path(vmid).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("["):
            break
        if line.startswith("cores:"):
            return int(line.split(":", 1)[1])
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def reactions(
    steps: list[Step], observed: Observed
) -> tuple[list[float], list[float], int, dict[str, list[float]]]:
    """Per step: seconds to the applied event and to the config change; how many steps
    saw neither before the container's next step; and the event times by direction."""
    by_direction: dict[str, list[float]] = {"up": [], "down": []}
    to_event: list[float] = []
    to_config: list[float] = []
    missed = 0
    for step in steps:
        event = next(
            (t for t, vmid, d in observed.applied
             if vmid == step.vmid and d == step.direction and step.at <= t < step.until),
            None,
        )  # fmt: skip
        history = observed.cores.get(step.vmid, [])
        before = next((c for t, c in reversed(history) if t <= step.at), None)
        config = next(
            (t for t, c in history
             if step.at < t < step.until and before is not None
             and (c > before if step.direction == "up" else c < before)),
            None,
        )  # fmt: skip
        if event is None or config is None:
            missed += 1
            print(
                f"  no reaction: ct {step.vmid} {step.direction} (event {event}, config {config})", flush=True
            )
            continue
        to_event.append(event - step.at)
        to_config.append(config - step.at)
        by_direction[step.direction].append(event - step.at)
    return to_event, to_config, missed, by_direction


async def watch(url: str, node: SimNode, observed: Observed, stepping: int, stop: asyncio.Event) -> None:
    nc = await open_connection(url)

    async def on_event(msg: Any) -> None:
        event = decode(msg.data, ScaleEvent)
        now = time.monotonic()
        observed.events += 1
        observed.outcomes[event.outcome] = observed.outcomes.get(event.outcome, 0) + 1
        if event.scaled_up or event.scaled_down:
            observed.applied.append((now, event.vmid, "up" if event.scaled_up else "down"))

    async def on_sample(msg: Any) -> None:
        observed.samples += 1

    await nc.subscribe(subjects.EVENTS_ALL, cb=on_event)
    await nc.subscribe(subjects.metrics_subject(NODE), cb=on_sample)
    try:
        while not stop.is_set():
            now = time.monotonic()
            for vmid in range(FIRST_VMID, FIRST_VMID + stepping):
                cores = read_cores(node, vmid)
                history = observed.cores.setdefault(vmid, [])
                if cores is not None and (not history or history[-1][1] != cores):
                    history.append((now, cores))
            await asyncio.sleep(CONFIG_POLL_S)
    finally:
        await nc.drain()


async def run_pair(args: argparse.Namespace, containers: int, interval_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-reaction-") as tmp:
        work = Path(tmp)
        node = build(work / "node", containers, args.stepping)
        config_path = work / "config.yaml"
        config_path.write_text(yaml.safe_dump(policy_config(args, interval_s, node)))
        broker = start_broker(work / "nats")
        group = ProcessGroup(log_dir=work / "logs")
        group.env[STARTUP_ENV] = str(args.pct_startup_s)
        observed = Observed()
        stop_watch = asyncio.Event()
        stop_driver = threading.Event()
        lead_s = args.lead_s + 2 * interval_s  # services started and two samples taken
        relative, length = schedule(args.stepping, args.cycles, interval_s, lead_s)
        driver = WorkloadDriver(node, profiles(relative, args.stepping), time.monotonic)
        thread = threading.Thread(target=driver.run, args=(stop_driver,), kwargs={"tick_s": DRIVER_TICK_S})
        watcher: asyncio.Task[None] | None = None
        try:
            nc = await open_connection(broker.url)
            # What `lxc-autoscale setup` does before the services start (they only check it).
            config = load_config(config_path, env={})
            await provision(nc.jetstream(), consumers=actuator_consumers(config, [NODE]))
            await nc.close()
            started = time.monotonic()
            thread.start()
            watcher = asyncio.create_task(watch(broker.url, node, observed, args.stepping, stop_watch))
            common = ["--config", str(config_path), "--nats-url", broker.url, "--log-format", "json"]
            group.start("actuator", ["cli.main", "actuator", *common])
            group.start("decider", ["cli.main", "decider", *common, "--replica-id", "bench"])
            collector = group.start("collector", ["cli.main", "collector", *common])
            steps = [Step(s.vmid, started + s.at, s.direction, started + s.until) for s in relative]
            first = min(s.at for s in steps)
            await asyncio.sleep(max(0.0, first - time.monotonic() - 0.5))
            if observed.samples < 2:
                raise RuntimeError(
                    f"the services were not ready {lead_s:.0f}s after start ({observed.samples} samples); "
                    "raise --lead-s; collector log:\n" + group.tail(collector)
                )
            cpu0, wall0 = cpu_seconds(collector.process.pid), time.monotonic()
            await asyncio.sleep(max(0.0, started + length - time.monotonic()))
            cpu1, wall1 = cpu_seconds(collector.process.pid), time.monotonic()
            if dead := group.dead():
                raise RuntimeError(f"{dead[0].name} exited: {group.tail(dead[0])}")
        finally:
            stop_driver.set()
            stop_watch.set()
            if watcher is not None:
                await watcher
            group.stop_all()
            broker.stop()
            if thread.is_alive():
                thread.join()
        pct_calls = len(node.pct_calls())
    to_event, to_config, missed, by_direction = reactions(steps, observed)
    if not to_event:
        raise RuntimeError(f"no step got a reaction (events: {observed.outcomes})")
    return {
        "containers": containers,
        "interval_s": interval_s,
        "steps": len(steps),
        "missed": missed,
        "react_p50_s": round(statistics.median(to_event), 2),
        "react_p99_s": round(percentile(to_event, 0.99), 2),
        "react_max_s": round(max(to_event), 2),
        "up_p50_s": round(statistics.median(by_direction["up"] or [0.0]), 2),
        "up_max_s": round(max(by_direction["up"] or [0.0]), 2),
        "down_p50_s": round(statistics.median(by_direction["down"] or [0.0]), 2),
        "down_max_s": round(max(by_direction["down"] or [0.0]), 2),
        "config_p50_s": round(statistics.median(to_config), 2),
        "config_p99_s": round(percentile(to_config, 0.99), 2),
        "collector_cpu_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "pct_calls_per_intent": round(pct_calls / max(observed.events, 1), 2),
        "outcomes": observed.outcomes,
    }


def numbers(text: str, kind: type) -> list[Any]:
    return [kind(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", default="100,1000", help="node sizes, comma-separated")
    parser.add_argument("--intervals", default="10,5,2,1", help="COLLECTOR.interval_s values")
    parser.add_argument("--cycles", type=int, default=2, help="up+down steps per stepping container")
    parser.add_argument("--stepping", type=int, default=4, help="containers whose load steps")
    parser.add_argument("--pct-startup-s", type=float, default=0.3, help="simulated pct start-up wait")
    parser.add_argument("--read-config", choices=("file", "pct"), default="file", help="ACTUATOR.read_config")
    parser.add_argument("--stabilization-s", type=float, default=0.0, help="scale_down_stabilization_s")
    parser.add_argument("--lead-s", type=float, default=6.0, help="time for the services to start")
    parser.add_argument("--quick", action="store_true", help="100 containers, interval 2 s, one cycle")
    args = parser.parse_args()
    if args.quick:
        args.containers, args.intervals, args.cycles = "100", "2", 1
    pairs = [(n, i) for n in numbers(args.containers, int) for i in numbers(args.intervals, float)]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; pct start-up {args.pct_startup_s}s", flush=True)  # fmt: skip
    results = []
    for containers, interval_s in pairs:
        result = asyncio.run(run_pair(args, containers, interval_s))
        results.append(result)
        r = result
        print(
            f"{containers} containers, interval {interval_s:g}s: step->applied p50 {r['react_p50_s']}s "
            f"p99 {r['react_p99_s']}s max {r['react_max_s']}s (up p50 {r['up_p50_s']}s max "
            f"{r['up_max_s']}s, down p50 {r['down_p50_s']}s max {r['down_max_s']}s); step->config p50 "
            f"{r['config_p50_s']}s p99 {r['config_p99_s']}s; collector {r['collector_cpu_pct']}% of a "
            f"core; {r['pct_calls_per_intent']} pct calls/intent; {r['steps']} steps, {r['missed']} missed",
            flush=True,
        )
    headline = next((x for x in results if x["containers"] == 100 and x["interval_s"] == 2), results[-1])
    print(json.dumps({**{k: v for k, v in headline.items() if k != "outcomes"}, "results": results}))


if __name__ == "__main__":
    main()
