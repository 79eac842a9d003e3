"""SIGKILL of the actuator at every step of a group scale-out, with the shipped permissions:
after a restart there is exactly one tagged, started clone, no snapshot left, the clone in
the membership record, and exactly one terminal event."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import (
    EventReader,
    actuator_process,
    eventually,
    publish_intent,
    queue_empty,
    setup_node,
    sim_node,
)
from group_harness import SOURCE, TAG, clones, group_config_file, group_intent, membership, pct_calls, view

from shared import failpoints
from shared.config import load_config
from shared.models import ScaleEvent
from shared.nats_settings import open_connection
from simnode import settings
from simnode.tree import SimNode
from tests.secure_broker import ShippedBroker

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parents[2]
STEPS = [name.removeprefix("group.after-") for name in failpoints.POINTS if name.startswith("group.")]
SCALE_OUT_STEPS = [step for step in STEPS if step != "stop"]


@dataclass
class Rig:
    """A simulated node, its config file, the setup user's JetStream, actuator processes."""

    sim: SimNode
    config: Path
    js: Any
    broker: ShippedBroker
    processes: list[Any] = field(default_factory=list)

    async def restart_and_read(self, count: int) -> list[ScaleEvent]:
        """Start an actuator without failpoints, let it empty the queue, read every event
        (with a reader opened only now: an idle ephemeral one may have been reaped)."""
        self.start(None)
        await eventually(lambda: queue_empty(self.js), timeout_s=60)
        reader = await EventReader.open(self.js)
        events = await reader.take(count, timeout_s=20)
        return events + await reader.nothing_more(wait_s=1.0)

    def start(self, crash: str | None) -> Any:
        url = self.broker.url_for("actuator", "pve1")
        process = actuator_process(self.broker, self.sim, self.config, crash, url=url)  # type: ignore[arg-type]
        self.processes.append(process)
        return process


@pytest.fixture
async def rig(shipped_broker: ShippedBroker, tmp_path: Path) -> AsyncIterator[Rig]:
    sim = sim_node(tmp_path / "node", (SOURCE, 2, 1024))
    config = tmp_path / "autoscale.yaml"
    config.write_text(group_config_file(sim))
    client = await open_connection(shipped_broker.url_for("setup"))
    made = Rig(sim, config, client.jetstream(), shipped_broker)
    await setup_node(made.js, load_config(config, env={}).actuator)  # as `lxc-autoscale setup` does
    try:
        yield made
    finally:
        await client.close()
        for process in made.processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
            process.stderr.close()


@pytest.mark.parametrize(
    "crash",
    [f"group.after-{step}" for step in SCALE_OUT_STEPS] + ["actuator.after-decide", "actuator.after-publish"],
)
async def test_a_kill_at_any_step_of_a_scale_out_ends_with_one_started_tagged_clone_and_one_event(
    rig: Rig, crash: str
) -> None:
    sim, js, intent = rig.sim, rig.js, group_intent()
    await publish_intent(js, intent)  # type: ignore[arg-type]
    assert await asyncio.to_thread(rig.start(crash).wait, 60) == -9  # SIGKILL at the chosen step
    [event] = await rig.restart_and_read(1)
    assert (event.outcome, event.detail) == ("applied", "scaled-out"), event
    assert event.intent_id == intent.intent_id
    [clone] = clones(sim)
    seen = view(sim, clone)
    assert seen is not None and TAG in seen.tags and sim.is_running(clone)
    assert seen.nets["net0"]["ip"] in ("10.0.0.21/24", "10.0.0.22/24")
    source = view(sim, SOURCE)
    assert source is not None and source.snapshots == frozenset()
    assert len(pct_calls(sim, "clone")) == 1 and await membership(js) == [clone] and event.vmid == clone


async def test_a_kill_after_a_scale_in_stopped_the_member_ends_with_one_event_and_the_member_forgotten(
    rig: Rig,
) -> None:
    sim, js = rig.sim, rig.js
    out, scale_in = group_intent(source_id="s1"), group_intent("scale-in", 200, source_id="s2")
    reader = await EventReader.open(js)
    await publish_intent(js, out)  # type: ignore[arg-type]
    crashed = rig.start("group.after-stop")
    [made] = await reader.take(1, timeout_s=30)
    await publish_intent(js, scale_in)  # type: ignore[arg-type]
    assert await asyncio.to_thread(crashed.wait, 60) == -9
    events = await rig.restart_and_read(2)
    assert (made.detail, made.vmid) == ("scaled-out", 200)
    assert len(events) == 2 and events[0] == made
    event = events[1]
    assert (event.outcome, event.detail, event.intent_id) == ("applied", "scaled-in", scale_in.intent_id)
    assert not sim.is_running(200) and view(sim, 200) is not None and await membership(js) == []
    assert len(pct_calls(sim, "stop")) == 1


async def test_an_actuator_killed_while_pct_clone_copies_waits_for_that_clone_and_makes_no_second(
    rig: Rig,
) -> None:
    """pct runs in its own session and outlives the actuator, as on a real node; the
    redelivered intent finds the new config locked (`create`) and waits for it."""
    sim, js, intent = rig.sim, rig.js, group_intent()
    settings.configure(sim.root, clone_s=3.0)
    await publish_intent(js, intent)  # type: ignore[arg-type]
    first = rig.start(None)
    await eventually(lambda: _locked(sim, 200), timeout_s=30)  # the copy is under way
    first.send_signal(signal.SIGKILL)
    assert await asyncio.to_thread(first.wait, 10) == -9
    [event] = await rig.restart_and_read(1)
    assert (event.outcome, event.detail, event.vmid) == ("applied", "scaled-out", 200), event
    assert len(pct_calls(sim, "clone")) == 1 and sim.is_running(200)
    source = view(sim, SOURCE)
    assert source is not None and source.snapshots == frozenset() and source.lock is None


async def _locked(sim: SimNode, vmid: int) -> bool:
    seen = view(sim, vmid)
    return seen is not None and seen.lock == "create"
