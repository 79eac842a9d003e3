"""Decider benchmark: the pure core's container decisions per second on one core, then
the service through NATS with 1 and 2 replicas (separate `lxc-autoscale decider`
processes), fed node samples of 100 containers as fast as they are taken.

Each sample comes from its own node name and has one container that needs a change, so
every sample gives exactly one intent: latency is measured from publishing the sample
to receiving its intent (a core subscription on autoscale.intents.>), duplicates are
intents stored in the stream beyond one per sample id. p99 is measured at half the
1-replica maximum rate. Medians of --runs runs; the last line is JSON.

Usage: python bench/decider_throughput.py [--runs 3] [--samples 2000] [--batch 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import reading, sample  # noqa: E402

from services.decider.policy import PolicyView, decide  # noqa: E402
from shared import subjects  # noqa: E402
from shared.codec import decode, encode  # noqa: E402
from shared.config import parse_config  # noqa: E402
from shared.embedded_broker import embedded_broker  # noqa: E402
from shared.models import HostTotals, NodeSample, ScaleIntent  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402

CONTAINERS = 100
NODES = 200  # the metrics stream keeps 50 samples per node: spread the backlog


def node_sample(seq: int, taken_at: datetime) -> NodeSample:
    """100 containers; container seq % 100 is busy and has a size no earlier sample had."""
    hot = seq % CONTAINERS
    readings = [
        reading(100 + i, cpu_pct=95.0 if i == hot else 50.0, memory_mb=1024 + (seq if i == hot else 0))
        for i in range(CONTAINERS)
    ]
    used_cores = sum(r.cores for r in readings)
    used_mb = sum(r.memory_mb for r in readings)
    host = HostTotals(
        cores=1024, memory_mb=1024 * 1024, allocated_cores_running=used_cores,
        allocated_memory_mb_running=used_mb, allocated_cores_all=used_cores, allocated_memory_mb_all=used_mb,
    )  # fmt: skip
    return sample(*readings, node=f"n{seq % NODES}", seq=seq, taken_at=taken_at, interval_s=60.0, host=host)


# ------------------------------------------------------------------ pure core


def pure_rate(seconds: float = 2.0) -> float:
    view = PolicyView(parse_config({}, env={}))
    now = datetime.now(UTC)
    samples = [node_sample(seq, now) for seq in range(50)]
    states: dict[int, Any] = {}
    done = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for s in samples:
            decide(s, view, states, now)
            done += CONTAINERS
    return done / (time.perf_counter() - start)


# ------------------------------------------------------------------ through NATS


def start_replicas(url: str, config: Path, count: int) -> list[subprocess.Popen[str]]:
    procs = []
    for index in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "decider", "--config", str(config), "--nats-url", url,
             "--replica-id", f"bench-{index}", "--log-format", "json", "--log-level", "INFO"],
            cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if '"event": "ready"' in line:
                break
        # Keep reading its log, or the replica blocks once the pipe is full.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        procs.append(proc)
    return procs


async def through_nats(url: str, total: int, rate: float | None) -> dict[str, float]:
    nc = await open_connection(url)
    js = nc.jetstream()
    received: dict[str, float] = {}
    published: dict[int, float] = {}
    done = asyncio.Event()

    async def on_intent(msg: Any) -> None:
        intent = decode(msg.data, ScaleIntent)
        if intent.source_id not in received:
            received[intent.source_id] = time.perf_counter()
            if len(received) == total:
                done.set()

    await nc.subscribe(subjects.INTENTS_ALL, cb=on_intent)
    now = datetime.now(UTC)
    payloads = [(seq, encode(node_sample(seq, now + timedelta(seconds=0)))) for seq in range(1, total + 1)]
    start = time.perf_counter()
    futures = []
    for index, (seq, data) in enumerate(payloads):
        if rate is not None:
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        published[seq] = time.perf_counter()
        futures.append(await js.publish_async(subjects.metrics_subject(f"n{seq % NODES}"), data))
    await asyncio.gather(*futures)
    await asyncio.wait_for(done.wait(), timeout=120)
    elapsed = max(received.values()) - start
    latencies = sorted(
        (received[f"n{seq % NODES}:boot-a:{seq}"] - published[seq]) * 1000 for seq in published
    )
    stored = await _settled_count(js)
    await nc.close()
    return {
        "decisions_per_s": total * CONTAINERS / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "duplicates": stored - len(received),
    }


async def _settled_count(js: Any) -> int:
    """Intents stored in the stream, once the count stops moving: a core subscriber can
    see an intent a moment before the stream's count includes it."""
    count = -1
    for _ in range(40):
        now = (await js.stream_info(subjects.INTENTS_STREAM)).state.messages
        if now == count:
            return now
        count = now
        await asyncio.sleep(0.05)
    return count


async def nats_run(replicas: int, total: int, rate: float | None, batch: int) -> dict[str, float]:
    with embedded_broker() as broker, tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(f"DEFAULT:\n  reserve_memory_mb: 0\nDECIDER:\n  batch: {batch}\n")
        client = await open_connection(broker.url)
        await provision(client.jetstream())
        await client.close()
        procs = start_replicas(broker.url, config, replicas)
        try:
            return await through_nats(broker.url, total, rate)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64, help="DECIDER.batch of the replicas")
    args = parser.parse_args()
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # the pure figure is for one core
    pure = statistics.median(pure_rate() for _ in range(args.runs))
    os.sched_setaffinity(0, cpus)
    print(f"pure core: {pure:,.0f} container decisions/s on one core")
    one = [asyncio.run(nats_run(1, args.samples, None, args.batch)) for _ in range(args.runs)]
    two = [asyncio.run(nats_run(2, args.samples, None, args.batch)) for _ in range(args.runs)]
    b = statistics.median(r["decisions_per_s"] for r in one)
    c = statistics.median(r["decisions_per_s"] for r in two)
    print(f"NATS, 1 replica: {b:,.0f} decisions/s; 2 replicas: {c:,.0f} decisions/s")
    half_rate = b / CONTAINERS / 2
    paced = [asyncio.run(nats_run(1, args.samples, half_rate, args.batch)) for _ in range(args.runs)]
    p50 = statistics.median(r["p50_ms"] for r in paced)
    p99 = statistics.median(r["p99_ms"] for r in paced)
    duplicates = sum(int(r["duplicates"]) for r in one + two + paced)
    print(f"latency at {half_rate:.0f} samples/s (half the maximum), 1 replica: "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"duplicate intents over all runs: {duplicates}")
    print(json.dumps({
        "pure_decisions_per_s": round(pure), "nats_decisions_per_s_1": round(b),
        "nats_decisions_per_s_2": round(c), "p99_ms": round(p99, 1), "duplicates": duplicates,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
