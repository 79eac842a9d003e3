"""A group action that fails ends the group's pending action at once, with the shipped
permissions: the actuator of the intent's node records how it ended (`outcome.<node>.<group>`),
a decider replica reads it and releases `action.<group>`, and the group retries after its
grace period instead of after `action_timeout_s` (docs/horizontal.md, "When an action fails")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import HOST, NODE, EventReader, fast_settings, setup_node, sim_node
from decider_harness import until
from support import reading, sample

from services.actuator.executors.local import LocalExecutor
from services.actuator.wiring import build_actuator
from services.decider.service import DeciderService
from shared import subjects
from shared.codec import encode
from shared.config import AutoscaleConfig, parse_config
from shared.groups import ActionLock
from shared.models import ScaleEvent
from shared.nats_settings import open_connection
from simnode.tree import SimNode
from tests.secure_broker import ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes(NODE)]
SOURCE = 101
GRACE_S = 3.0


def config(url: str) -> AutoscaleConfig:
    # A target storage the cluster does not have: Proxmox refuses the clone, every time.
    section = {
        "base_snapshot_name": SOURCE, "min_instances": 1, "max_instances": 3, "target_storage": "gone",
        "scale_out_grace_period": GRACE_S, "scale_in_grace_period": GRACE_S, "ready_after_s": 0,
    }  # fmt: skip
    return parse_config({"HORIZONTAL_SCALING_GROUP_web": section, "NATS": {"url": url}}, env={})


@contextlib.asynccontextmanager
async def services(broker: ShippedBroker, sim: SimNode, setup: Any) -> AsyncIterator[DeciderService]:
    """pve1's actuator and one decider replica, each signed in as its shipped user."""
    conf = config(broker.url_for("decider"))
    settings = fast_settings(sim)
    await setup_node(setup, settings)  # as `lxc-autoscale setup` does; the actuator may not
    actuator_nc = await open_connection(broker.url_for("actuator", NODE))
    actuator = await build_actuator(
        nc=actuator_nc, node=NODE, settings=settings, executor=LocalExecutor(), limits=HOST, tiers=conf
    )
    decider = DeciderService(conf, replica_id="r0")
    stops = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(actuator.service.run(stops[0])), asyncio.create_task(decider.run(stops[1]))]
    try:
        yield decider
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await actuator.executor.close()
        await actuator_nc.close()


async def group_events(reader: EventReader, count: int, timeout_s: float) -> list[ScaleEvent]:
    """The next `count` events of group intents (the hot source is also scaled up vertically)."""
    found: list[ScaleEvent] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(found) < count:
        left = deadline - asyncio.get_running_loop().time()
        found += [e for e in await reader.take(1, timeout_s=max(left, 0.1)) if e.group is not None]
    return found


async def feed_hot(js: Any, until_done: asyncio.Event) -> None:
    """The source at 95% CPU, as pve1's collector would report it, every 0.2 s."""
    seq = 0
    while not until_done.is_set():
        seq += 1
        hot = sample(reading(SOURCE, cpu_pct=95.0), seq=seq, taken_at=datetime.now(UTC), interval_s=1.0)
        await js.publish(subjects.metrics_subject(NODE), encode(hot))
        await asyncio.sleep(0.2)


async def test_a_failed_scale_out_releases_the_action_at_once_and_retries_after_the_grace_period(
    shipped_broker: ShippedBroker, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (SOURCE, 2, 1024))
    admin = await open_connection(shipped_broker.url)
    js = admin.jetstream()
    groups = await js.key_value(subjects.GROUPS_BUCKET)
    reader = await EventReader.open(js)
    done = asyncio.Event()
    try:
        async with services(shipped_broker, sim, js) as decider:
            feeding = asyncio.create_task(feed_hot(js, done))
            # action_timeout_s is 900 s: a second scale-out within 30 s is only possible
            # because the first one's failure ended the pending action.
            events = await group_events(reader, 2, timeout_s=30)
            done.set()
            await feeding
            second_id = events[1].intent_id
            await until(lambda: _released(decider, second_id), timeout=10, what="the second action released")
            # as the replica wrote and read them (a third attempt may follow one grace period later)
            assert decider.groups is not None
            lock, _ = decider.groups.locks["web"]
            outcome = decider.groups.outcomes[("web", NODE)]
            entries = await groups.history(subjects.group_action_key("web"))
            history = [ActionLock.from_bytes(e.value) for e in entries if e.value]
    finally:
        done.set()
        await admin.close()
    assert [(e.outcome, e.detail) for e in events] == [("failed", "command-failed")] * 2, events
    assert events[0].intent_id != events[1].intent_id
    assert all(e.group is not None and "clone" not in e.group.steps for e in events)  # Proxmox refused it
    assert "storage 'gone' does not exist" in events[0].message
    # the retry waited for the grace period counted from the first action, not for its timeout
    assert events[1].reason is not None
    between = events[1].reason.state["last_action_s_ago"]
    assert isinstance(between, float) and GRACE_S <= between < GRACE_S + 10, between
    assert lock is not None and (lock.intent_id, lock.state) == (second_id, "done")
    # in the bucket (history 5): each attempt taken pending, then released by its failure
    failed = f"failed by the actuator of {NODE}: command-failed"
    written = [(entry.intent_id, entry.state, entry.outcome) for entry in history]
    assert (events[0].intent_id, "done", failed) in written
    mine = [w for w in written if w[0] == second_id]
    assert mine == [(second_id, "pending", ""), (second_id, "done", failed)] and lock.outcome == failed
    assert (outcome.intent_id, outcome.node, outcome.outcome) == (second_id, NODE, "failed")
    assert sim.vmids() == [SOURCE]  # neither attempt left a container behind


async def _released(decider: DeciderService, intent_id: str) -> bool:
    coordinator = decider.groups
    if coordinator is None:
        return False
    lock, _ = coordinator.locks.get("web", (None, 0))
    return lock is not None and lock.intent_id == intent_id and lock.state == "done"
