"""Console benchmark: the JSON API's requests/s and latency for the containers list at
1,000 containers, and the page's time to first render in headless Chromium.

A private nats-server, 4 nodes x 250 containers published once (a quarter of them
above a threshold, so the policy has intents to explain), `lxc-autoscale console` as
its own process. The load generator (aiohttp, --clients connections, in this process)
asks `GET /api/v1/containers` for --seconds, then `GET /healthz` for as long: the
ratio of the two, measured in the same run, is what the 1,000-container list costs
against the server's bare round trip. Then Chromium loads the page --page-loads times;
time to first render = from navigation start until the table holds every container.
Medians of --runs runs; the last line is JSON.

Usage: python bench/console.py [--runs 5] [--seconds 5] [--clients 8] [--page-loads 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
from support import reading  # noqa: E402

from shared import subjects  # noqa: E402
from shared.codec import encode  # noqa: E402
from shared.embedded_broker import embedded_broker, free_port  # noqa: E402
from shared.models import HostTotals, NodeSample  # noqa: E402
from shared.nats_settings import open_connection  # noqa: E402
from shared.provisioning import provision  # noqa: E402

NODES = 4
PER_NODE = 250
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--window-size=1400,900",
)  # fmt: skip


def node_sample(index: int) -> NodeSample:
    readings = [
        reading(1000 + index * PER_NODE + i, hostname=f"ct-{index}-{i}", cpu_pct=95.0 if i % 4 == 0 else 50.0)
        for i in range(PER_NODE)
    ]
    cores = sum(r.cores for r in readings)
    memory = sum(r.memory_mb for r in readings)
    host = HostTotals(
        cores=1024, memory_mb=4 * 1024 * 1024, allocated_cores_running=cores,
        allocated_memory_mb_running=memory, allocated_cores_all=cores, allocated_memory_mb_all=memory,
    )  # fmt: skip
    return NodeSample(
        node=f"bench{index}", seq=1, boot_id="bench", taken_at=datetime.now(UTC), interval_s=3600,
        source="sim", host=host, containers=tuple(readings),
    )  # fmt: skip


async def publish_samples(url: str) -> None:
    nc = await open_connection(url)
    js = nc.jetstream()
    await provision(js)
    for index in range(NODES):
        await js.publish(subjects.metrics_subject(f"bench{index}"), encode(node_sample(index)))
    await nc.close()


def start_console(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    config = workdir / "config.yaml"
    config.write_text("DEFAULT: {scale_down_stabilization_s: 0}\n")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "console", "--config", str(config), "--nats-url", url,
         "--port", str(port), "--log-format", "json", "--log-level", "WARNING"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


async def wait_for_containers(base: str, count: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"{base}/api/v1/containers") as response:
                    if response.status == 200 and len(await response.json()) == count:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"the console did not list {count} containers within {timeout_s:g} s")


async def hammer(url: str, seconds: float, clients: int) -> dict[str, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(url) as response:
                await response.read()
                assert response.status == 200
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def page_first_render(base: str, loads: int, count: int) -> list[float]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    times = []
    try:
        for _ in range(loads):
            driver.get("about:blank")
            driver.get(base + "/")
            WebDriverWait(driver, 60, poll_frequency=0.01).until(
                lambda d: d.execute_script("return document.querySelectorAll('#containers tbody tr').length")
                == count
            )
            # Navigation start to now, on the page's own clock.
            times.append(driver.execute_script("return performance.now()"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return times


def cold_build_ms(repeats: int = 5) -> float:
    """What one change costs: the policy on every node, the rows, the JSON, from scratch."""
    from services.console.cluster import Cluster
    from services.console.web import dumps
    from services.decider.explain import make_explainer
    from shared.config import parse_config

    explain = make_explainer(parse_config({"DEFAULT": {"scale_down_stabilization_s": 0}}, env={}))
    samples = [node_sample(i) for i in range(NODES)]
    times = []
    for _ in range(repeats):
        cluster = Cluster(explain=explain)
        for sample in samples:
            cluster.add_sample(sample)
        started = time.perf_counter()
        dumps(cluster.containers(datetime.now(UTC))).encode()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def one_run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, embedded_broker(Path(tmp) / "nats") as broker:
        asyncio.run(publish_samples(broker.url))
        process, base = start_console(broker.url, Path(tmp))
        try:
            count = NODES * PER_NODE
            asyncio.run(wait_for_containers(base, count))
            listing = asyncio.run(hammer(f"{base}/api/v1/containers", args.seconds, args.clients))
            bare = asyncio.run(hammer(f"{base}/healthz", args.seconds, args.clients))
            renders = page_first_render(base, args.page_loads, count) if args.page_loads else [0.0]
        finally:
            process.terminate()
            process.wait(10)
    cold = cold_build_ms()
    result = {
        "containers_rps": listing["rps"],
        "containers_p50_ms": listing["p50_ms"],
        "containers_p99_ms": listing["p99_ms"],
        "healthz_rps": bare["rps"],
        "healthz_to_containers_ratio": bare["rps"] / listing["rps"],
        "cold_build_ms": cold,
        "cold_build_to_cached_p50_ratio": cold / listing["p50_ms"],
        "page_first_render_ms": statistics.median(renders),
    }
    print("run: " + ", ".join(f"{k}={v:.1f}" for k, v in result.items()), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--page-loads", type=int, default=3)
    args = parser.parse_args()
    print(
        f"console benchmark: {NODES} nodes x {PER_NODE} containers, {args.clients} clients, "
        f"{args.seconds:g} s per endpoint, {args.runs} runs; cpus={os.cpu_count()}",
        flush=True,
    )
    runs = [one_run(args) for _ in range(args.runs)]
    medians = {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
