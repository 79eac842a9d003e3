"""Horizontal groups in real decider replicas, signed in as the shipped `decider` user:
one decision makes one scale-out however many replicas decide it, the next waits for the
first one's clone, and a tagged clone is a member whatever the records say."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from decider_harness import Replica, until

from services.decider.service import DeciderService
from shared import subjects
from shared.codec import decode_intent, encode
from shared.config import AutoscaleConfig, parse_config
from shared.groups import ActionLock
from shared.models import ContainerReading, GroupIntent, HostTotals, NodeSample
from shared.nats_settings import open_connection
from tests.secure_broker import ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes("pve1", "pve2")]
SOURCE, LISTED = 200, 300


def config(url: str, **group: Any) -> AutoscaleConfig:
    section = {
        "base_snapshot_name": SOURCE, "lxc_containers": [LISTED], "min_instances": 2, "max_instances": 4,
        "ready_after_s": 30, "scale_out_grace_period": 0, "scale_in_grace_period": 0, **group,
    }  # fmt: skip
    return parse_config({"HORIZONTAL_SCALING_GROUP_web": section, "NATS": {"url": url}}, env={})


def ct(vmid: int, cpu: float, *, tagged: bool = False, up_s: float = 600, memory: float = 40
       ) -> ContainerReading:  # fmt: skip
    return ContainerReading(
        vmid=vmid, status="running", cores=2, memory_mb=1024, cpu_pct=cpu, memory_pct=memory,
        running_for_s=up_s, tags=("autoscale-group-web",) if tagged else (),
    )  # fmt: skip


def sample(node: str, seq: int, *containers: ContainerReading) -> NodeSample:
    return NodeSample(
        node=node, seq=seq, boot_id="boot", taken_at=datetime.now(UTC), interval_s=1, source="sim",
        host=HostTotals(cores=16, memory_mb=32768, allocated_cores_running=4, allocated_cores_all=4,
                        allocated_memory_mb_running=4096, allocated_memory_mb_all=4096),
        containers=containers,
    )  # fmt: skip


@contextlib.asynccontextmanager
async def replicas(shipped_broker: ShippedBroker, count: int, **group: Any) -> AsyncIterator[list[Replica]]:
    started = []
    for index in range(count):
        service = DeciderService(config(shipped_broker.url_for("decider"), **group), replica_id=f"r{index}")
        stop = asyncio.Event()
        started.append(Replica(service, stop, asyncio.create_task(service.run(stop))))
    try:
        for replica in started:
            await until(lambda r=replica: _ready(r.service), timeout=15, what="replica ready")
        yield started
    finally:
        for replica in started:
            await replica.halt()


async def _ready(service: DeciderService) -> bool:
    return service.groups is not None and service.handler is not None


async def group_intents(js: Any) -> list[GroupIntent]:
    """Every group intent in the intents stream (read without taking them)."""
    info = await js.stream_info(subjects.INTENTS_STREAM)
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        with contextlib.suppress(Exception):
            intent = decode_intent((await js.get_msg(subjects.INTENTS_STREAM, seq)).data)
            if isinstance(intent, GroupIntent):
                found.append(intent)
    return found


async def feed(js: Any, seconds: float, *pve1: ContainerReading, pve2: Sequence[ContainerReading] = ()
               ) -> None:  # fmt: skip
    """Samples from both nodes every 0.2 s, as two collectors would send them."""
    seq = int(asyncio.get_running_loop().time() * 1000)
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        seq += 1
        await js.publish(subjects.metrics_subject("pve1"), encode(sample("pve1", seq, *pve1)))
        await js.publish(subjects.metrics_subject("pve2"), encode(sample("pve2", seq, *pve2)))
        await asyncio.sleep(0.2)


async def test_two_replicas_make_one_scale_out_per_decision_and_wait_for_its_clone(
    shipped_broker: ShippedBroker,
) -> None:
    admin = await open_connection(shipped_broker.url)
    js = admin.jetstream()
    try:
        async with replicas(shipped_broker, 2) as both:
            await feed(js, 4, ct(SOURCE, 95), ct(LISTED, 90))
            [first] = await group_intents(js)  # both replicas decided, one intent was made
            assert (first.group, first.action, first.node, first.vmid) == ("web", "scale-out", "pve1", SOURCE)
            assert first.reason.rule == "group-scale-out" and "cpu 92.5% > 80%" in first.reason.summary
            groups = await js.key_value(subjects.GROUPS_BUCKET)
            lock = ActionLock.from_bytes((await groups.get(subjects.group_action_key("web"))).value)
            assert (lock.state, lock.intent_id) == ("pending", first.intent_id)
            assert sum(r.service.groups.intents for r in both if r.service.groups) == 1

            # The clone boots on pve2 (tagged, not yet past the readiness gate): still one action.
            booting = ct(201, 0, tagged=True, up_s=5)
            await feed(js, 2, ct(SOURCE, 95), ct(LISTED, 90), pve2=(booting,))
            assert len(await group_intents(js)) == 1

            # Ready, and the group is still hot: the lock is done, the next scale-out follows.
            ready = ct(201, 95, tagged=True, up_s=60)
            await feed(js, 3, ct(SOURCE, 95), ct(LISTED, 90), pve2=(ready,))
            intents = await group_intents(js)
            assert len(intents) == 2 and intents[1].action == "scale-out"
            assert "over 3 ready members" in intents[1].reason.summary  # the clone on pve2 counts
    finally:
        await admin.close()


async def test_a_tagged_clone_no_record_knows_is_scaled_in_and_a_stale_node_holds_the_group(
    shipped_broker: ShippedBroker,
) -> None:
    admin = await open_connection(shipped_broker.url)
    js = admin.jetstream()
    try:
        async with replicas(shipped_broker, 1) as [replica]:
            # pve2's collector stopped long ago: its tagged clone's node is stale, nothing happens.
            old = sample("pve2", 1, ct(202, 1, tagged=True, memory=1)).model_copy(
                update={"taken_at": datetime(2026, 1, 1, tzinfo=UTC)}
            )
            await js.publish(subjects.metrics_subject("pve2"), encode(old))
            seq = 10
            quiet = (ct(SOURCE, 1, memory=1), ct(LISTED, 1, memory=1), ct(201, 1, tagged=True, memory=1))
            for _ in range(10):
                seq += 1
                await js.publish(subjects.metrics_subject("pve1"), encode(
                    sample("pve1", seq, *quiet)))  # fmt: skip
                await asyncio.sleep(0.2)
            assert await group_intents(js) == []
            assert replica.service.groups is not None
            assert "waiting: stale samples from pve2 (members 202)" in replica.service.groups.notes["web"]
            # pve2 comes back without the clone (it was stopped and destroyed by hand): pve1's
            # tagged clone, adopted from its tag alone, is the newest one and is stopped.
            await feed(js, 3, *quiet)
            [intent] = await group_intents(js)
            assert (intent.action, intent.vmid, intent.node) == ("scale-in", 201, "pve1")
    finally:
        await admin.close()
