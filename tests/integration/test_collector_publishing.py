"""The collector publishing to a real nats-server, including a broker restart."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from support import metric

from services.collector.cycle import Collector
from services.collector.sampling import SamplingSettings
from services.collector.service import CollectorService
from services.collector.sources.cgroup import CgroupSource
from shared import subjects
from shared.clock import SystemClock
from shared.codec import decode
from shared.embedded_broker import EmbeddedBroker, start_broker
from shared.models import NodeSample
from shared.nats_settings import NatsSettings, connect, open_connection
from shared.provisioning import provision

INTERVAL_S = 0.2


def write_node(root: Path, vmids: list[int]) -> Path:
    """The smallest v2-shaped node: configs, cgroup files and host files."""
    (root / "etc/pve/lxc").mkdir(parents=True)
    (root / "sys/devices/system/cpu").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "sys/devices/system/cpu/online").write_text("0-7\n")
    (root / "proc/meminfo").write_text("MemTotal: 16777216 kB\n")
    for vmid in vmids:
        (root / f"etc/pve/lxc/{vmid}.conf").write_text("cores: 2\nmemory: 1024\n")
        cgroup = root / f"sys/fs/cgroup/lxc/{vmid}"
        cgroup.mkdir(parents=True)
        (cgroup / "cpu.stat").write_text("usage_usec 1000\n")
        (cgroup / "memory.current").write_text(f"{512 * 1024 * 1024}\n")
        (cgroup / "memory.max").write_text(f"{1024 * 1024 * 1024}\n")
        (cgroup / "memory.stat").write_text("anon 1\nfile 0\n")
    return root


def make_service(root: Path, nc: Any) -> CollectorService:
    collector = Collector(
        CgroupSource(root, label="sim"), node="pve1", interval_s=INTERVAL_S, settings=SamplingSettings()
    )
    return CollectorService(collector, nc, SystemClock())


async def stored_samples(url: str) -> list[NodeSample]:
    """Every sample the metrics stream holds, in order."""
    client = await open_connection(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(subjects.METRICS_STREAM)
        found = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            message = await js.get_msg(subjects.METRICS_STREAM, seq)
            assert message.data is not None
            found.append(decode(message.data, NodeSample))
        return found
    finally:
        await client.close()


async def wait_for(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def published_at_least(service: CollectorService, count: int) -> Any:
    async def check() -> bool:
        return service.outage.published >= count

    return check


def _dropped() -> float:
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "autoscale_collector_samples_dropped"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("node") == "pve1"
    )


async def test_samples_arrive_on_the_node_subject_with_increasing_seq(tmp_path: Path, nc: Any) -> None:
    root = write_node(tmp_path / "node", [101, 102])
    published = metric("autoscale_collector_samples_published_total", node="pve1")
    cycles = metric("autoscale_collector_cycle_duration_seconds_count", node="pve1")
    received: list[NodeSample] = []

    async def on_message(msg: Any) -> None:
        received.append(decode(msg.data, NodeSample))

    await nc.subscribe(subjects.metrics_subject("pve1"), cb=on_message)
    service = make_service(root, nc)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def three() -> bool:
        return len(received) >= 3

    await wait_for(three, timeout_s=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    seqs = [s.seq for s in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {s.boot_id for s in received} == {service.collector.boot_id}
    assert [c.vmid for c in received[-1].containers] == [101, 102]
    assert received[-1].containers[0].memory_pct == 50.0
    info = await nc.jetstream().stream_info(subjects.METRICS_STREAM)
    assert info.state.messages >= 3  # stored in the stream, not just sent
    # Counted as they happened: each stored sample, each timed cycle.
    assert metric("autoscale_collector_samples_published_total", node="pve1") - published == (
        service.outage.published
    )
    assert metric("autoscale_collector_cycle_duration_seconds_count", node="pve1") - cycles >= len(received)


async def test_a_node_that_cannot_be_read_is_counted_as_failed_cycles_and_the_collector_goes_on(
    tmp_path: Path, nc: Any
) -> None:
    root = write_node(tmp_path / "node", [101])
    (root / "proc/meminfo").unlink()  # the host's memory cannot be read: no sample can be built
    failed = metric("autoscale_collector_cycles_failed_total", node="pve1")
    service = make_service(root, nc)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))

    async def three_failed() -> bool:
        return metric("autoscale_collector_cycles_failed_total", node="pve1") >= failed + 3

    try:
        await wait_for(three_failed, timeout_s=10)
        assert not task.done() and service.outage.published == 0
        (root / "proc/meminfo").write_text("MemTotal: 16777216 kB\n")
        await wait_for(published_at_least(service, 1), timeout_s=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_a_broker_restart_is_survived_without_a_burst_of_stale_samples(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    root = write_node(tmp_path / "node", [101])
    settings = NatsSettings(url=broker.url, connect_timeout_s=1)
    nc = await connect(settings, service="collector-test")
    await provision(nc.jetstream())
    service = make_service(root, nc)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await wait_for(published_at_least(service, 3), timeout_s=5)
        dropped_before = _dropped()
        broker.stop()
        outage_started = datetime.now().astimezone()
        await asyncio.sleep(8 * INTERVAL_S)
        assert not task.done()  # still running with the broker gone
        restarted = start_broker(broker.store_dir, port=broker.port)
        outage_ended = datetime.now().astimezone()
        before = service.outage.published
        dropped = _dropped() - dropped_before
        await wait_for(published_at_least(service, before + 3), timeout_s=15)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
        await nc.close()
    try:
        samples = await stored_samples(restarted.url)
    finally:
        restarted.stop()
    assert service.outage.dropped >= 4  # one interval each while the broker was away
    assert dropped >= 4, "samples not published while the broker was away are counted as dropped"
    during = [s for s in samples if outage_started <= s.taken_at <= outage_ended]
    assert len(during) <= 1  # at most the one in flight when the broker went away
    seqs = [s.seq for s in samples]
    assert seqs == sorted(seqs)
    assert seqs[-1] - seqs[0] + 1 > len(seqs)  # dropped samples leave a gap, never a replay


async def test_the_collector_command_publishes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, broker: EmbeddedBroker, nc: Any
) -> None:
    root = write_node(tmp_path / "node", [101])
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text("COLLECTOR:\n  node: pve9\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "collector", "--config", str(config), "--root", str(root),
         "--interval", "0.2", "--nats-url", broker.url, "--log-format", "json"],
        cwd=Path(__file__).parents[2],
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        received: list[NodeSample] = []
        client = await open_connection(broker.url)
        sub = await client.subscribe(subjects.metrics_subject("pve9"))
        while len(received) < 2:
            message = await sub.next_msg(timeout=10)
            received.append(decode(message.data, NodeSample))
        await client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        logs = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
    assert [s.node for s in received] == ["pve9", "pve9"]
    assert '"event": "collector_stopped"' in logs


def test_the_collector_refuses_to_start_on_a_broker_setup_has_not_prepared(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    root = write_node(tmp_path / "node", [101])
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text("COLLECTOR:\n  node: pve9\n")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "collector", "--root", str(root), "--interval", "0.2",
         "--config", str(config), "--nats-url", broker.url, "--log-format", "json"],
        cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "stream AUTOSCALE_METRICS does not exist" in done.stderr
    assert "lxc-autoscale setup" in done.stderr
