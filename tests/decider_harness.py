"""A group of decider replicas against a real nats-server, for the decider's integration
tests: start, kill, publish samples, wait until every sample is acknowledged, read intents."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from support import sample

from services.decider.service import DeciderService
from shared import subjects
from shared.codec import decode, encode
from shared.config import AutoscaleConfig, parse_config
from shared.models import ContainerReading, NodeSample, ScaleIntent
from shared.nats_settings import open_connection
from shared.provisioning import StreamSettings, provision

FAST_REDELIVERY = StreamSettings(decider_ack_wait_s=1.0)


def config_for(broker: Any, **defaults: Any) -> AutoscaleConfig:
    document = {"DEFAULT": {"scale_down_stabilization_s": 20, **defaults}, "NATS": {"url": broker.url}}
    return parse_config(document, env={})


@dataclass
class Replica:
    service: DeciderService
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def halt(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 10)

    async def kill(self) -> None:
        """Die without acknowledging anything in flight: cancel and drop the connection."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 15)
        if self.service.nc is not None and not self.service.nc.is_closed:
            await self.service.nc.close()


@dataclass
class Cluster:
    broker: Any
    nc: Any
    replicas: list[Replica] = field(default_factory=list)
    settings: StreamSettings = FAST_REDELIVERY

    async def start(self, config: AutoscaleConfig, name: str) -> Replica:
        service = DeciderService(config, replica_id=name, stream_settings=self.settings)
        stop = asyncio.Event()
        replica = Replica(service, stop, asyncio.create_task(service.run(stop)))
        self.replicas.append(replica)
        await until(lambda: ready(service), what=f"replica {name} ready")
        return replica

    async def publish(self, node_sample: NodeSample) -> None:
        await self.nc.jetstream().publish(subjects.metrics_subject(node_sample.node), encode(node_sample))

    async def drained(self, timeout: float = 15) -> None:
        js = self.nc.jetstream()

        async def done() -> bool:
            info = await js.consumer_info(subjects.METRICS_STREAM, subjects.DECIDER_CONSUMER)
            return info.num_pending == 0 and info.num_ack_pending == 0

        await until(done, timeout=timeout, what="every sample acknowledged")

    async def intents(self) -> list[ScaleIntent]:
        """Every intent stored so far (read off the work queue, as the actuator would)."""
        js = self.nc.jetstream()
        sub = await js.pull_subscribe(
            subjects.INTENTS_ALL, durable="test-reader", stream=subjects.INTENTS_STREAM
        )
        found: list[ScaleIntent] = []
        while True:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except TimeoutError:  # nats-py raises its own subclass or asyncio's, depending on the path
                break
            for msg in batch:
                found.append(decode(msg.data, ScaleIntent))
                await msg.ack_sync()
        await sub.unsubscribe()
        return found


async def ready(service: DeciderService) -> bool:
    return service.handler is not None


async def until(
    condition: Callable[[], Awaitable[bool]], *, timeout: float = 10, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_cluster(broker: Any, settings: StreamSettings = FAST_REDELIVERY) -> AsyncIterator[Cluster]:
    """Provisioned streams and a client; every replica started in it is killed at the end."""
    client = await open_connection(broker.url)
    await provision(client.jetstream(), settings)
    group = Cluster(broker, client, settings=settings)
    try:
        yield group
    finally:
        for replica in group.replicas:
            with contextlib.suppress(Exception):
                await replica.kill()
        await client.close()


def fresh(*containers: ContainerReading, **overrides: Any) -> NodeSample:
    return sample(*containers, **{"taken_at": datetime.now(UTC), **overrides})
