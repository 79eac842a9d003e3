"""Fleet benchmark: the whole system at fleet size on a three-server NATS cluster.

3 simulated Proxmox nodes x 1,000 containers, each node with its real `lxc-autoscale
collector` (interval 10 s) and `actuator`, 3 `decider` replicas serving all nodes, all
signed in with the shipped users and permissions and given every server's URL; the
broker is three local nats-server processes running the shipped configuration as one
JetStream cluster (tests/secure_broker.py `ShippedCluster`, the test fixture), every
stream and bucket with 3 copies. No Docker.

Load: on each node 98 % of the containers are idle at the tier minimum (1 core, 512 MB:
read and decided every cycle, nothing to change, as in bench/reaction.py) and 2 % swing
every 60 s between saturated (3 cores of demand) and idle (0.1 core), so intents and
events flow all the time. The load is played by one `python -m simnode.workload`
process per node (the simulated kernel, not measured).

After a warm-up (every node sampled and decided), it measures over `--window` seconds:
samples/s, container decisions/s and intents/s (the deciders' own counters, summed over
the replicas), events/s and the bytes of a sample (the streams), CPU (share of one core,
from /proc utime+stime) and resident memory (VmRSS) of each NATS server, the deciders'
CPU, and the collectors' and actuators' CPU. It derives the per-message costs used for
the 20-node calculation in docs/performance.md. Several runs; the median run (by total
broker CPU) is the last line, JSON.

    .venv/bin/python bench/fleet.py [--runs 3] [--nodes 3] [--containers 1000]
        [--interval 10] [--window 60] [--quick]
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
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import yaml  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from reaction import cpu_seconds  # noqa: E402

from cli.processes import ProcessGroup, ServiceProcess  # noqa: E402
from shared import subjects  # noqa: E402
from shared.codec import decode  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.embedded_broker import free_port  # noqa: E402
from shared.models import ScaleEvent  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from tests.secure_broker import ShippedCluster  # noqa: E402

FIRST_VMID = 1000
SWING_SHARE = 0.02
SWING_PERIOD_S = 60.0
HOST_CORES = 256
HOST_MEMORY_MB = 2 * 1024 * 1024
DRIVER_TICK_S = 2.0


def scenario(node: str, containers: int) -> dict[str, Any]:
    """simnode.workload's scenario: idle containers at the tier minimum, a few swinging."""
    swinging = max(1, round(containers * SWING_SHARE))
    specs: list[dict[str, Any]] = []
    half = SWING_PERIOD_S / 2
    for i in range(swinging):
        lead = half * (i + 1) / swinging  # each starts at its own point of the cycle
        specs.append({
            "vmid": FIRST_VMID + i, "hostname": f"swing{i}", "cores": 2, "memory_mb": 2048, "loop": True,
            "profile": [
                {"duration_s": lead, "cpu": 0.8, "memory_mb": 1000, "cache_mb": 100},
                {"duration_s": half, "cpu": 3.0, "memory_mb": 1000, "cache_mb": 100},
                {"duration_s": SWING_PERIOD_S - lead, "cpu": 0.1, "memory_mb": 1000, "cache_mb": 100},
            ],
        })  # fmt: skip
    specs += [
        # No profile: idle (simnode's default). At the tier minimum, so nothing to change.
        {"vmid": FIRST_VMID + i, "hostname": f"idle{i}", "cores": 1, "memory_mb": 512}
        for i in range(swinging, containers)
    ]
    return {"node": node, "host_cores": HOST_CORES, "host_memory_mb": HOST_MEMORY_MB, "containers": specs}


def node_config(node: str, root: Path, interval_s: float) -> dict[str, Any]:
    """The project's default policy, but no scale-down wait (so the swings scale both
    ways within a period) and a host that admits every step."""
    return {
        "DEFAULT": {"scale_down_stabilization_s": 0, "overcommit_ratio": 10, "off_peak_start": 0,
                    "off_peak_end": 0},
        "COLLECTOR": {"node": node, "interval_s": interval_s, "source": "sim", "root": str(root)},
        "DECIDER": {"intent_ttl_s": 60},
        "ACTUATOR": {"node": node, "pct_path": str(root / "usr" / "sbin" / "pct"), "root": str(root),
                     "host_cores": HOST_CORES, "host_memory_mb": HOST_MEMORY_MB},
    }  # fmt: skip


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def decider_counters(port: int) -> dict[str, float]:
    """samples, decisions and intents a decider counted (all nodes, every label)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    wanted = {
        "autoscale_decider_samples": "samples",
        "autoscale_decider_decisions": "decisions",
        "autoscale_decider_intents": "intents",
    }
    totals = dict.fromkeys(wanted.values(), 0.0)
    for family in text_string_to_metric_families(text):
        if family.name in wanted:
            counted = [s for s in family.samples if s.name.endswith("_total")]
            totals[wanted[family.name]] += sum(s.value for s in counted)
            if family.name == "autoscale_decider_intents":
                for s in counted:  # by direction and policy rule, e.g. "scale-up cpu-above-upper"
                    key = f"rule:{s.labels.get('direction')} {s.labels.get('rule')}"
                    totals[key] = totals.get(key, 0.0) + s.value
    return totals


async def tally_events(url: str, outcomes: dict[str, int], stop: asyncio.Event) -> None:
    """Count the events published while the window runs, by outcome and detail."""
    nc = await open_connection(url, connect_timeout=2)

    async def on_event(msg: Any) -> None:
        event = decode(msg.data, ScaleEvent)
        key = f"{event.outcome}/{event.detail}"
        outcomes[key] = outcomes.get(key, 0) + 1

    try:
        await nc.subscribe(subjects.EVENTS_ALL, cb=on_event)
        await stop.wait()
    finally:
        await nc.drain()


async def stream_figures(url: str) -> dict[str, float]:
    nc = await open_connection(url, connect_timeout=2)
    try:
        js = nc.jetstream(timeout=5)
        out: dict[str, float] = {}
        for name, stream in (("samples", subjects.METRICS_STREAM), ("intents", subjects.INTENTS_STREAM),
                             ("events", subjects.EVENTS_STREAM)):  # fmt: skip
            info = await js.stream_info(stream)
            out[f"{name}_seq"] = float(info.state.last_seq)
            out[f"{name}_bytes"] = info.state.bytes / max(info.state.messages, 1)
        return out
    finally:
        await nc.close()


class Snapshot:
    """CPU seconds of every measured process and the deciders' counters, at one instant."""

    def __init__(
        self, brokers: dict[str, int], services: dict[str, ServiceProcess], ports: list[int]
    ) -> None:
        self.at = time.monotonic()
        self.broker_cpu = {name: cpu_seconds(pid) for name, pid in brokers.items()}
        self.service_cpu = {name: cpu_seconds(m.process.pid) for name, m in services.items()}
        self.counters = [decider_counters(port) for port in ports]

    def total(self, key: str) -> float:
        return sum(c.get(key, 0.0) for c in self.counters)

    def rules(self) -> set[str]:
        return {key for c in self.counters for key in c if key.startswith("rule:")}


def wait_for_trees(roots: list[Path], group: ProcessGroup, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not all((root / "usr" / "sbin" / "pct").exists() for root in roots):
        if dead := group.dead():
            raise RuntimeError(f"{dead[0].name} exited: {group.tail(dead[0])}")
        if time.monotonic() > deadline:
            raise RuntimeError("the simulated nodes were not built in time")
        time.sleep(0.5)


async def run_once(args: argparse.Namespace) -> dict[str, Any]:
    nodes = [f"pve{i + 1}" for i in range(args.nodes)]
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        cluster = ShippedCluster(work / "nats", nodes)
        group = ProcessGroup(log_dir=work / "logs")
        try:
            roots = {node: work / node for node in nodes}
            for node in nodes:
                (work / f"{node}.json").write_text(json.dumps(scenario(node, args.containers)))
                config = node_config(node, roots[node], args.interval)
                (work / f"{node}.yaml").write_text(yaml.safe_dump(config))
                group.start(f"workload-{node}", ["simnode.workload", "--root", str(roots[node]),
                                                 "--profile", str(work / f"{node}.json"),
                                                 "--tick", str(DRIVER_TICK_S)])  # fmt: skip
            await cluster.provision(replicas=3, config=load_config(work / f"{nodes[0]}.yaml", env={}))
            wait_for_trees(list(roots.values()), group, timeout_s=180)
            # The driver writes the first real readings on its next ticks (a fresh tree has
            # memory.current 0, which the policy would rightly take as an idle container).
            await asyncio.sleep(3 * DRIVER_TICK_S)
            services: dict[str, ServiceProcess] = {}
            metric_ports = []
            for index in range(args.deciders):
                port = free_port()
                metric_ports.append(port)
                services[f"decider-{index + 1}"] = group.start(f"decider-{index + 1}", [
                    "cli.main", "decider", "--config", str(work / f"{nodes[0]}.yaml"), "--log-format", "json",
                    "--nats-url", cluster.url_for("decider"), "--metrics-port", str(port),
                    "--replica-id", f"bench-{index + 1}",
                ])  # fmt: skip
            for node in nodes:
                common = ["--config", str(work / f"{node}.yaml"), "--log-format", "json"]
                services[f"actuator-{node}"] = group.start(
                    f"actuator-{node}",
                    ["cli.main", "actuator", *common, "--nats-url", cluster.url_for("actuator", node)],
                )
                services[f"collector-{node}"] = group.start(
                    f"collector-{node}",
                    ["cli.main", "collector", *common, "--nats-url", cluster.url_for("collector", node)],
                )
            brokers = {s.member.server_name: s.pid for s in cluster.servers if s.member is not None}
            await warm_up(args, metric_ports, group, cluster.url)
            outcomes: dict[str, int] = {}
            stop = asyncio.Event()
            tally = asyncio.create_task(tally_events(cluster.url, outcomes, stop))
            before = Snapshot(brokers, services, metric_ports)
            streams_before = await stream_figures(cluster.url)
            await asyncio.sleep(args.window)
            after = Snapshot(brokers, services, metric_ports)
            streams_after = await stream_figures(cluster.url)
            stop.set()
            await tally
            memory = {name: round(rss_mb(pid), 1) for name, pid in brokers.items()}
            if dead := group.dead():
                raise RuntimeError(f"{dead[0].name} exited: {group.tail(dead[0])}")
        finally:
            group.stop_all()
            cluster.stop()
    return {**figures(args, before, after, streams_before, streams_after, memory), "event_outcomes": outcomes}


async def warm_up(args: argparse.Namespace, ports: list[int], group: ProcessGroup, url: str) -> None:
    """Until every node's sample has been decided three times (the first cycle only primes
    the CPU counters) and the intents queue is empty (the steady state, not the start)."""
    deadline = time.monotonic() + args.interval * 6 + 180
    while time.monotonic() < deadline:
        if dead := group.dead():
            raise RuntimeError(f"{dead[0].name} exited: {group.tail(dead[0])}")
        try:
            decided = sum(decider_counters(port)["samples"] for port in ports)
        except OSError:
            decided = 0
        if decided >= 3 * args.nodes and await queued_intents(url) == 0:
            return
        await asyncio.sleep(1)
    raise RuntimeError("the deciders did not reach a steady state in time")


async def queued_intents(url: str) -> int:
    nc = await open_connection(url, connect_timeout=2)
    try:
        info = await nc.jetstream(timeout=5).stream_info(subjects.INTENTS_STREAM)
        return int(info.state.messages)  # a work queue: what no actuator has finished
    finally:
        await nc.close()


def figures(
    args: argparse.Namespace, before: Snapshot, after: Snapshot,
    streams_before: dict[str, float], streams_after: dict[str, float], memory: dict[str, float],
) -> dict[str, Any]:  # fmt: skip
    wall = after.at - before.at

    def rate(key: str) -> float:
        return (after.total(key) - before.total(key)) / wall

    def cpu_pct(now: dict[str, float], then: dict[str, float], name: str) -> float:
        return 100 * (now[name] - then[name]) / wall

    broker_cpu = {n: round(cpu_pct(after.broker_cpu, before.broker_cpu, n), 2) for n in before.broker_cpu}
    service_cpu = {n: round(cpu_pct(after.service_cpu, before.service_cpu, n), 2) for n in before.service_cpu}
    decider_cpu = {n: v for n, v in service_cpu.items() if n.startswith("decider")}
    samples_per_s, decisions_per_s, intents_per_s = rate("samples"), rate("decisions"), rate("intents")
    events_per_s = (streams_after["events_seq"] - streams_before["events_seq"]) / wall
    broker_total = sum(broker_cpu.values())
    decider_total = sum(decider_cpu.values())
    return {
        "nodes": args.nodes,
        "containers_per_node": args.containers,
        "interval_s": args.interval,
        "window_s": round(wall, 1),
        "samples_per_s": round(samples_per_s, 3),
        "decisions_per_s": round(decisions_per_s, 1),
        "intents_per_s": round(intents_per_s, 3),
        "events_per_s": round(events_per_s, 3),
        "intents_per_s_by_rule": {
            rule[5:]: round(rate(rule), 3) for rule in sorted(after.rules()) if rate(rule) > 0
        },
        "intents_stored_per_s": round(
            (streams_after["intents_seq"] - streams_before["intents_seq"]) / wall, 3
        ),
        "sample_kb": round(streams_after["samples_bytes"] / 1024, 1),
        "event_kb": round(streams_after["events_bytes"] / 1024, 2),
        "broker_cpu_pct": broker_cpu,
        "broker_cpu_pct_total": round(broker_total, 2),
        "broker_rss_mb": memory,
        "decider_cpu_pct": decider_cpu,
        "decider_cpu_pct_total": round(decider_total, 2),
        "collector_cpu_pct": {n: v for n, v in service_cpu.items() if n.startswith("collector")},
        "actuator_cpu_pct": {n: v for n, v in service_cpu.items() if n.startswith("actuator")},
        # Per-message costs (CPU milliseconds): all broker work (3 copies of every sample,
        # intent, event and KV write) per sample; decider work per container decision.
        "broker_cpu_ms_per_sample": round(10 * broker_total / max(samples_per_s, 1e-9), 1),
        "decider_cpu_us_per_decision": round(1e4 * decider_total / max(decisions_per_s, 1e-9), 1),
    }


def main(argv: list[str] | None = None) -> int:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--containers", type=int, default=1000, help="per node")
    parser.add_argument("--interval", type=float, default=10.0, help="collector interval_s")
    parser.add_argument("--deciders", type=int, default=3)
    parser.add_argument("--window", type=float, default=60.0, help="measured seconds per run")
    parser.add_argument("--quick", action="store_true", help="1 run, 100 containers per node, 30 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.containers, args.window = 1, 100, 30.0
    print(f"fleet: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{args.nodes} nodes x {args.containers} containers, interval {args.interval:g} s, "
          f"{args.deciders} deciders, 3 NATS servers", flush=True)  # fmt: skip
    results = []
    for run in range(args.runs):
        result = asyncio.run(run_once(args))
        results.append(result)
        print(f"run {run + 1}: {json.dumps(result)}", flush=True)
    ordered = sorted(results, key=lambda r: r["broker_cpu_pct_total"])
    median = ordered[len(ordered) // 2]
    median["runs"] = len(results)
    median["broker_cpu_pct_total_runs"] = [r["broker_cpu_pct_total"] for r in results]
    median["decider_cpu_pct_total_runs"] = [r["decider_cpu_pct_total"] for r in results]
    median["decisions_per_s_median"] = statistics.median(r["decisions_per_s"] for r in results)
    print(json.dumps(median), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
