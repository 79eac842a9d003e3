"""The demo running with its console, for the console's end-to-end and browser tests.

One demo per test module (`--forever`, its own broker), a poller that records every
verdict the console shows, and small HTTP and NATS helpers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared import subjects
from shared.codec import encode
from shared.embedded_broker import EmbeddedBroker, free_port, start_broker
from shared.models import ContainerReading, HostTotals, NodeSample
from shared.nats_settings import open_connection

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = json.loads((ROOT / "simnode" / "scenarios" / "demo.json").read_text())
TOKEN = "console-test-token-0123456789"
HOSTILE_NAME = "<img src=x onerror=\"document.title='pwned'\">&amp;"


@dataclass
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ConsoleDemo:
    broker: EmbeddedBroker
    url: str
    process: subprocess.Popen[bytes]
    output: Path
    metrics: dict[str, str] = field(default_factory=dict)  # service -> its /metrics address
    seen: list[tuple[int, str, str]] = field(default_factory=list)  # (vmid, verdict, reason)
    _stop: threading.Event = field(default_factory=threading.Event)

    def request(
        self, path: str, body: dict[str, Any] | None = None, token: str | None = None, scheme: str = "Bearer"
    ) -> Reply:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"{scheme} {token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return Reply(response.status, response.read())
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read())

    def get(self, path: str) -> Any:
        reply = self.request(path)
        assert reply.status == 200, reply.body
        return reply.json()

    def wait_for(self, what: str, check: Callable[[], Any], timeout_s: float = 40.0) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    def poll_verdicts(self) -> None:
        while not self._stop.is_set():
            try:
                for row in self.get("/api/v1/containers"):
                    decision = row.get("decision") or {}
                    entry = (row["vmid"], decision.get("verdict", ""), decision.get("reason", ""))
                    if entry not in self.seen:
                        self.seen.append(entry)
            except (OSError, AssertionError):
                pass
            self._stop.wait(0.2)


def scrape(url: str) -> dict[str, float]:
    """One /metrics page as {'name{labels}': value} (Prometheus text format)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def families(url: str) -> set[str]:
    """The metric families a /metrics page declares (its `# TYPE` lines)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    # A counter's family is declared with or without `_total` depending on whether it has samples yet.
    declared = (line.split()[2] for line in text.splitlines() if line.startswith("# TYPE "))
    return {name.removesuffix("_total") for name in declared}


def nats_call(url: str, action: Callable[[Any], Any]) -> Any:
    async def run() -> Any:
        nc = await open_connection(url)
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(run())


def publish_hostile_sample(url: str) -> None:
    """A node whose only container has a name built to run script in a careless page."""
    publish_one_container(url, "hostile", 990, HOSTILE_NAME)


def publish_one_container(url: str, node: str, vmid: int, hostname: str, tags: tuple[str, ...] = ()) -> None:
    """A sample of a node with one running container, as a collector would publish it."""
    reading = ContainerReading(
        vmid=vmid, hostname=hostname, status="running", cores=1, memory_mb=512,
        cpu_pct=50.0, memory_pct=50.0, memory_used_mb=256.0, tags=tags,
    )  # fmt: skip
    sample = NodeSample(
        node=node, seq=1, boot_id="b", taken_at=datetime.now(UTC), interval_s=3600, source="sim",
        host=HostTotals(cores=4, memory_mb=8192, allocated_cores_running=1, allocated_memory_mb_running=512,
                        allocated_cores_all=1, allocated_memory_mb_all=512),
        containers=(reading,),
    )  # fmt: skip

    async def publish(js: Any) -> None:
        await js.publish(subjects.metrics_subject(node), encode(sample))

    nats_call(url, publish)


@contextlib.contextmanager
def second_console(demo: ConsoleDemo, extra_config: str) -> Iterator[str]:
    """Another console on the demo's broker, its configuration the demo's plus `extra_config`."""
    config = demo.output.parent / "second-console.yaml"
    config.write_text((demo.output.parent / "demo" / "config.yaml").read_text() + extra_config)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "console", "--config", str(config), "--nats-url", demo.broker.url,
         "--port", str(port), "--log-format", "json"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    try:
        second = ConsoleDemo(broker=demo.broker, url=f"http://127.0.0.1:{port}/", process=process,
                             output=demo.output)  # fmt: skip
        second.wait_for("the second console", lambda: _answers(second))
        yield second.url
    finally:
        process.terminate()
        process.wait(10)


def run_console_demo(workdir: Path) -> Iterator[ConsoleDemo]:
    broker = start_broker(workdir / "nats")
    output = workdir / "demo.out"
    env = {**os.environ, "NATS_URL": broker.url, "LXC_AUTOSCALE_CONSOLE_TOKEN": TOKEN}
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "demo", "--forever", "--workdir", str(workdir / "demo"),
             "--console-port", "0", "--metrics"],
            stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip
    try:
        url = _console_url(output, process)
        metrics = dict(re.findall(r"demo: metrics (\S+) (http://\S+/metrics)", output.read_text()))
        demo = ConsoleDemo(broker=broker, url=url, process=process, output=output, metrics=metrics)
        demo.wait_for("the console to answer", lambda: _answers(demo))
        poller = threading.Thread(target=demo.poll_verdicts, daemon=True)
        poller.start()
        yield demo
        demo._stop.set()
        poller.join(5)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        broker.stop()


def _console_url(output: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"demo: console (http://127\.0\.0\.1:\d+/)", output.read_text())
        if match:
            return match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"the demo printed no console address:\n{output.read_text()}")


def _answers(demo: ConsoleDemo) -> bool:
    try:
        return demo.request("/readyz").status == 200
    except OSError:
        return False
