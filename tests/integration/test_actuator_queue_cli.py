"""`lxc-autoscale queue`: intents for a node without an actuator do not sit silently."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, setup_node, sim_node
from nats.js.api import AckPolicy, ConsumerConfig

from shared import subjects
from shared.config import ActuatorSettings
from shared.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]


async def queue(broker: EmbeddedBroker, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "empty.yaml"
    config.write_text("{}\n")
    command = [sys.executable, "-m", "cli.main", "queue", "--config", str(config), "--nats-url", broker.url,
               "--older-than", "0"]  # fmt: skip
    return await asyncio.to_thread(
        subprocess.run, command, cwd=PROJECT, capture_output=True, text=True, timeout=60
    )


async def test_intents_for_a_node_without_an_actuator_are_reported_and_fail_the_check(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(101))
        await reader.take(1)
        healthy = await queue(broker, tmp_path)
        for vmid in (101, 102, 103):
            await publish_intent(js, intent(vmid, node="pve3"))
        stranded = await queue(broker, tmp_path)
    assert healthy.returncode == 0, healthy.stderr
    assert "no actuator" not in healthy.stdout
    assert stranded.returncode == 1, stranded.stderr
    assert "pve3: 3 intent(s) queued - no actuator: consumer actuator-pve3 does not exist" in stranded.stdout


async def test_a_node_whose_consumer_nobody_pulls_from_is_reported(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    js = nc.jetstream()
    await setup_node(js, ActuatorSettings(), node="pve2")  # setup made it; no actuator runs
    await publish_intent(js, intent(101, node="pve2"))
    done = await queue(broker, tmp_path)
    assert done.returncode == 1, done.stderr
    expected = "pve2: 1 intent(s) queued - no actuator is pulling: 1 undelivered, last delivery never"
    assert expected in done.stdout


async def test_an_intent_that_reached_max_deliver_is_reported(
    nc: Any, broker: EmbeddedBroker, tmp_path: Path
) -> None:
    js = nc.jetstream()
    consumer = ConsumerConfig(
        durable_name="actuator-pve4", filter_subject="autoscale.intents.pve4",
        ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0, max_deliver=1,
    )  # fmt: skip
    await js.add_consumer(subjects.INTENTS_STREAM, consumer)
    await publish_intent(js, intent(101, node="pve4"))
    subscription = await js.pull_subscribe_bind("actuator-pve4", stream=subjects.INTENTS_STREAM)
    [taken] = await subscription.fetch(1, timeout=5)  # never acked: as if every try hit broker trouble
    await asyncio.sleep(1.5)  # past ack_wait: with max_deliver 1 the server gives up
    done = await queue(broker, tmp_path)
    assert done.returncode == 1, done.stderr
    assert "pve4: 1 intent(s) queued - 1 intent(s) reached max_deliver" in done.stdout
    assert taken.subject == "autoscale.intents.pve4"
