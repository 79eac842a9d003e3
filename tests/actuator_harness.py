"""Test helpers for the actuator: intents, an in-process actuator, and event collection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from services.actuator.commands import HostLimits
from services.actuator.executors.base import Executor
from services.actuator.executors.local import LocalExecutor
from services.actuator.wiring import Actuator, build_actuator, node_consumer
from shared import failpoints, subjects
from shared.codec import decode, encode
from shared.config import ActuatorSettings, AutoscaleConfig
from shared.embedded_broker import EmbeddedBroker
from shared.models import DecisionReason, ResourceSize, ScaleEvent, ScaleIntent
from shared.provisioning import provision
from simnode.tree import ContainerSpec, SimNode, build_node

NODE = "pve1"
HOST = HostLimits(cores=16, memory_mb=32768)
PROJECT = Path(__file__).resolve().parents[1]
# ACTUATOR settings for an actuator process: quick commands and retries, ack_wait 4 s.
PROCESS_CONFIG = """\
ACTUATOR:
  command_timeout_s: 1
  max_attempts: 3
  backoff_initial_s: 0.01
  backoff_max_s: 0.05
"""


def sim_node(root: Path, *specs: tuple[int, int, int]) -> SimNode:
    """A simulated node with containers given as (vmid, cores, memory_mb)."""
    return build_node(
        root,
        node_name=NODE,
        host_cores=HOST.cores,
        host_memory_mb=HOST.memory_mb,
        containers=[ContainerSpec(vmid, f"ct{vmid}", cores, memory) for vmid, cores, memory in specs],
    )


def fast_settings(sim: SimNode, **overrides: Any) -> ActuatorSettings:
    values: dict[str, Any] = {
        "pct_path": str(sim.pct_path),
        "pvesh_path": str(sim.pvesh_path),
        "root": str(sim.root),
        "command_timeout_s": 3.0,
        "max_attempts": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
    }
    values.update(overrides)
    return ActuatorSettings(**values)


def intent(
    vmid: int = 101,
    *,
    expected: tuple[int, int] = (2, 1024),
    target: tuple[int, int] = (3, 1024),
    source_id: str = "pve1:boot-a:1",
    created_at: datetime | None = None,
    ttl_s: float = 120.0,
    node: str = NODE,
    **extra: Any,
) -> ScaleIntent:
    return ScaleIntent.build(
        node=node,
        vmid=vmid,
        expected=ResourceSize(cores=expected[0], memory_mb=expected[1]),
        target=ResourceSize(cores=target[0], memory_mb=target[1]),
        reason=DecisionReason(
            rule="scale-up", summary="cpu 95% > 80%", inputs={"cpu_pct": 95.0}, thresholds={"upper": 80}
        ),
        source_id=source_id,
        created_at=created_at or datetime.now(UTC),
        ttl_s=ttl_s,
        **extra,
    )


def expired_intent(**kwargs: Any) -> ScaleIntent:
    return intent(created_at=datetime.now(UTC) - timedelta(seconds=300), ttl_s=60, **kwargs)


async def publish_intent(js: Any, item: ScaleIntent) -> None:
    await js.publish(
        subjects.intents_subject(item.node), encode(item), headers={"Nats-Msg-Id": item.intent_id}
    )


async def publish_raw(js: Any, payload: bytes, node: str = NODE) -> None:
    await js.publish(subjects.intents_subject(node), payload)


async def setup_node(js: Any, settings: ActuatorSettings, node: str = NODE) -> None:
    """What `lxc-autoscale setup --node NODE` does with these actuator settings (as admin)."""
    await provision(js, consumers=[(subjects.INTENTS_STREAM, node_consumer(settings, node))])


def actuator_process(
    broker: EmbeddedBroker,
    sim: SimNode,
    config: Path,
    crash_after: str | None,
    url: str | None = None,
    log: Path | None = None,
    action: str = "kill",
) -> Any:
    """`lxc-autoscale actuator` for NODE as its own process; `crash_after` arms `action`
    (SIGKILL) at that failpoint (`command` for `actuator.after-command`, or a full name such
    as `group.after-clone`); its JSON log goes to `log` (else a pipe, `.stderr`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "AUTOSCALE_"))}
    if crash_after:
        name = crash_after if "." in crash_after else f"actuator.after-{crash_after}"
        env[failpoints.ENVIRONMENT_VARIABLE] = f"{name}={action}"
    command = [
        sys.executable, "-m", "cli.main", "actuator", "--config", str(config),
        "--nats-url", url or broker.url, "--node", NODE, "--pct", str(sim.pct_path),
        "--root", str(sim.root),
        "--host-cores", "16", "--host-memory-mb", "32768", "--log-format", "json",
    ]  # fmt: skip
    quiet = subprocess.DEVNULL
    if log is None:
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=quiet, stderr=subprocess.PIPE)
    with log.open("ab") as sink:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=PROJECT, env=env, stdout=quiet, stderr=sink)


@contextlib.asynccontextmanager
async def running_actuator(
    nc: Any,
    sim: SimNode,
    *,
    executor: Executor | None = None,
    limits: HostLimits = HOST,
    config: AutoscaleConfig | None = None,
    node: str = NODE,
    **overrides: Any,
) -> AsyncIterator[Actuator]:
    """An actuator for `node` running in this event loop until the block ends; its consumer
    is made first, as `lxc-autoscale setup` does."""
    settings = fast_settings(sim, **overrides)
    await setup_node(nc.jetstream(), settings, node)
    actuator = await build_actuator(
        nc=nc,
        node=node,
        settings=settings,
        executor=executor or LocalExecutor(),
        limits=limits,
        tiers=config,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(actuator.service.run(stop))
    try:
        yield actuator
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await actuator.executor.close()


@dataclass
class EventReader:
    """Reads the events stream from the beginning, like a late subscriber would."""

    subscription: Any

    @classmethod
    async def open(cls, js: Any, node: str = NODE, vmid: int | None = None) -> EventReader:
        # Not reaped after the server's 5 s idle default while a slow step (a CLI process
        # starting on a busy machine) runs between two reads.
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=300.0
        )
        subscription = await js.pull_subscribe(
            subjects.events_filter(node, vmid), stream=subjects.EVENTS_STREAM, config=config
        )
        return cls(subscription)

    async def take(self, count: int, timeout_s: float = 20.0) -> list[ScaleEvent]:
        events: list[ScaleEvent] = []
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(events) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"expected {count} events, got {len(events)}: {events}")
            try:
                messages = await self.subscription.fetch(count - len(events), timeout=min(left, 1.0))
            except Exception as exc:
                if "Timeout" not in type(exc).__name__:
                    raise
                continue
            events.extend(decode(m.data, ScaleEvent) for m in messages)
        return events

    async def nothing_more(self, wait_s: float = 0.5) -> list[ScaleEvent]:
        try:
            messages = await self.subscription.fetch(10, timeout=wait_s)
        except Exception as exc:
            if "Timeout" not in type(exc).__name__:
                raise
            return []
        return [decode(m.data, ScaleEvent) for m in messages]


def set_calls(sim: SimNode, vmid: int = 101) -> list[list[str]]:
    return [call for call in sim.pct_calls() if call[:2] == ["set", str(vmid)]]


async def queue_empty(js: Any) -> bool:
    """Nothing is left in the intents work queue."""
    return bool((await js.stream_info(subjects.INTENTS_STREAM)).state.messages == 0)


async def intent_settled(js: Any, vmid: int = 101, node: str = NODE) -> bool:
    """The intents queue is empty and the actuator's journal holds nothing for `vmid`."""
    queued = (await js.stream_info(subjects.INTENTS_STREAM)).state.messages
    journal = await js.key_value(subjects.ACTUATOR_BUCKET)
    try:
        await journal.get(subjects.state_key(node, vmid))
    except NotFoundError:
        return bool(queued == 0)
    return False


async def eventually(check: Any, timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll an async check until it returns something truthy; fail with its last value."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = await check()
        if value or asyncio.get_running_loop().time() > deadline:
            assert value, f"condition not met within {timeout_s}s (last value {value!r})"
            return value
        await asyncio.sleep(interval_s)
