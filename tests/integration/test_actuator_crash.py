"""Exactly-once effect across crashes: the actuator killed mid-intent, the broker restarted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import (
    PROCESS_CONFIG,
    EventReader,
    actuator_process,
    eventually,
    intent,
    intent_settled,
    publish_intent,
    queue_empty,
    running_actuator,
    set_calls,
    setup_node,
    sim_node,
)

from shared import failpoints
from shared.config import load_config
from shared.embedded_broker import EmbeddedBroker, start_broker
from shared.nats_settings import open_connection
from tests.secure_broker import ShippedBroker

pytestmark = pytest.mark.integration


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "autoscale.yaml"
    path.write_text(PROCESS_CONFIG)
    return path


@pytest.mark.parametrize("step", ["command", "publish"])
async def test_an_actuator_killed_mid_intent_makes_one_change_and_one_applied_event_after_restart(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path, config_file: Path, processes: list[Any], step: str
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    await setup_node(js, load_config(config_file, env={}).actuator)
    await publish_intent(js, intent(target=(4, 2048)))

    first = actuator_process(broker, sim, config_file, crash_after=step)
    processes.append(first)
    assert await asyncio.to_thread(first.wait, 30) == -9  # SIGKILL, at the chosen step
    assert len(set_calls(sim)) == 1

    processes.append(actuator_process(broker, sim, config_file, crash_after=None))
    # The restarted actuator first waits out the killed one's node lease (docs/actuator.md).
    await eventually(lambda: intent_settled(js), timeout_s=40)
    reader = await EventReader.open(js)  # ephemeral: opened only now, so it is not reaped idle
    [event] = await reader.take(1, timeout_s=10)
    assert (event.outcome, event.detail) == ("applied", "resized")
    assert (event.before.cores, event.after.cores) == (2, 4)  # type: ignore[union-attr]
    assert await reader.nothing_more(wait_s=0.5) == []
    assert len(set_calls(sim)) == 1
    assert sim.read_conf(101)["memory"] == "2048"


async def test_a_broker_restart_mid_stream_loses_no_intent(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    vmids = list(range(101, 121))
    sim = sim_node(tmp_path / "node", *((v, 2, 1024) for v in vmids))
    js = nc.jetstream()
    restarted: EmbeddedBroker | None = None
    try:
        async with running_actuator(nc, sim, command_timeout_s=1.0):
            for vmid in vmids[:10]:
                await publish_intent(js, intent(vmid))
            await asyncio.sleep(0.1)  # some intents are mid-way when the broker goes
            broker.stop()
            restarted = await asyncio.to_thread(start_broker, broker.store_dir, port=broker.port)
            for vmid in vmids[10:]:
                await _publish_when_connected(js, intent(vmid))
            reader = await EventReader.open(js)
            events = await reader.take(len(vmids), timeout_s=40)
            events += await reader.nothing_more(wait_s=1.0)
    finally:
        if restarted is not None:
            restarted.stop()
    applied = sorted(e.vmid for e in events if e.outcome == "applied")
    assert applied == vmids
    assert len(events) == len(vmids)
    assert all(len(set_calls(sim, v)) == 1 for v in vmids)


async def _publish_when_connected(js: Any, item: Any) -> None:
    for _ in range(100):
        try:
            await publish_intent(js, item)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError("could not publish after the broker restart")


ACTUATOR_STEPS = sorted(
    name.removeprefix("actuator.after-") for name in failpoints.POINTS if name.startswith("actuator.")
)


@pytest.mark.parametrize("step", ACTUATOR_STEPS)
async def test_with_the_shipped_permissions_a_kill_at_every_step_ends_with_one_event_per_intent(
    shipped_broker: ShippedBroker, tmp_path: Path, config_file: Path, processes: list[Any], step: str
) -> None:
    """Killed while handling `first`; `second` (which follows first's change) is queued
    before the restart, so it is handled while `first` waits for its redelivery."""
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    client = await open_connection(shipped_broker.url_for("setup"))
    js = client.jetstream()
    await setup_node(js, load_config(config_file, env={}).actuator)  # as `lxc-autoscale setup` does
    first = intent(target=(4, 2048), source_id="first")
    second = intent(expected=(4, 2048), target=(3, 2048), source_id="second")
    url = shipped_broker.url_for("actuator", "pve1")
    try:
        await publish_intent(js, first)
        crashed = actuator_process(shipped_broker, sim, config_file, crash_after=step, url=url)  # type: ignore[arg-type]
        processes.append(crashed)
        assert await asyncio.to_thread(crashed.wait, 30) == -9
        await publish_intent(js, second)
        processes.append(actuator_process(shipped_broker, sim, config_file, None, url=url))  # type: ignore[arg-type]
        await eventually(lambda: queue_empty(js), timeout_s=40)
        reader = await EventReader.open(js)  # ephemeral: opened only now, so it is not reaped idle
        events = await reader.take(2, timeout_s=20)
        events += await reader.nothing_more(wait_s=1.0)
    finally:
        await client.close()
    assert sorted(e.intent_id for e in events) == sorted([first.intent_id, second.intent_id]), events
    [first_event] = [e for e in events if e.intent_id == first.intent_id]
    assert (first_event.outcome, first_event.detail) == ("applied", "resized")
    assert [call[2:] for call in set_calls(sim)].count(["-cores", "4", "-memory", "2048"]) == 1
