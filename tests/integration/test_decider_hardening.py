"""No sample stops a decider, freezes a container or is trusted beyond what it may claim
(issue 10, items 1, 2, 3, 8, 9 and the decider's part of 10), against a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import msgpack
import nats
import pytest
from decider_harness import FAST_REDELIVERY, Cluster, config_for, fresh, running_cluster, until
from support import reading, sample

from services.decider.service import DeciderService
from shared import failpoints, subjects
from shared.codec import encode
from shared.config import parse_config
from shared.models import HostTotals
from shared.nats_settings import open_connection
from shared.provisioning import StreamSettings


@pytest.fixture
async def cluster(broker: Any) -> AsyncIterator[Cluster]:
    async with running_cluster(broker) as group:
        yield group


def raw_sample(**changes: Any) -> bytes:
    """A sample as the wire carries it, with fields a collector would never send."""
    document = fresh(reading(101, cpu_pct=95.0)).model_dump(mode="json")
    document.update(changes)
    return bytes(msgpack.packb(document, use_bin_type=True))


async def alive_and_deciding(cluster: Cluster, service: DeciderService) -> None:
    """The replica still runs and a valid sample sent now is decided."""
    await cluster.publish(fresh(reading(102, cpu_pct=95.0), seq=1_000, boot_id="boot-after"))
    await cluster.drained()
    assert 102 in [i.vmid for i in await cluster.intents()]
    assert service.handler is not None


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"taken_at": "9999-12-31T23:00:00-05:00"}, id="taken_at at the end of the calendar"),
        pytest.param({"seq": "1" * 100}, id="a 100-digit seq (as a string, which the model coerced)"),
        pytest.param({"seq": 2**64 - 1}, id="a seq at the end of 64 bits"),
        pytest.param({"taken_at": "0001-01-01T00:00:00+14:00"}, id="taken_at before the calendar starts"),
    ],
)
async def test_a_sample_that_crashed_replicas_is_refused_and_the_replica_goes_on(
    cluster: Cluster, changes: dict[str, Any]
) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    await cluster.nc.jetstream().publish(subjects.metrics_subject("pve1"), raw_sample(**changes))
    await cluster.drained()
    assert not replica.task.done(), "the replica exited"
    await alive_and_deciding(cluster, replica.service)
    assert [i.vmid for i in await cluster.intents()] == []  # 102 was read above; nothing for 101


async def test_a_sample_from_the_future_is_refused_and_does_not_freeze_the_container(
    cluster: Cluster,
) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    now = datetime.now(UTC)
    year_2100 = datetime(2100, 1, 1, tzinfo=UTC)
    await cluster.publish(sample(reading(101, memory_pct=5.0), seq=1, taken_at=year_2100))
    await cluster.drained()
    assert await cluster.intents() == []
    await cluster.publish(sample(reading(101, cpu_pct=95.0), seq=2, taken_at=now))
    await cluster.drained()
    assert [(i.vmid, i.target.cores) for i in await cluster.intents()] == [(101, 4)]
    assert replica.service.handler is not None and replica.service.handler.counters.refused == 1


async def test_a_forged_seq_does_not_make_later_real_samples_look_old(cluster: Cluster) -> None:
    await cluster.start(config_for(cluster.broker), "r1")
    now = datetime.now(UTC)
    # A low memory reading starts a stabilization window, so the forged sample writes state.
    await cluster.publish(sample(reading(101, memory_pct=5.0), seq=10**15, taken_at=now))
    await cluster.drained()
    await cluster.publish(sample(reading(101, cpu_pct=95.0), seq=2, taken_at=now + timedelta(seconds=1)))
    await cluster.drained()
    assert [(i.vmid, i.target.cores) for i in await cluster.intents()] == [(101, 4)]


def forged_host() -> HostTotals:
    return HostTotals(
        cores=8192, memory_mb=64 * 1024 * 1024, allocated_cores_running=0,
        allocated_memory_mb_running=0, allocated_cores_all=0, allocated_memory_mb_all=0,
    )  # fmt: skip


async def test_admission_uses_the_configured_host_size_and_the_sizes_it_sees(cluster: Cluster) -> None:
    document = {
        "DEFAULT": {"max_cores": 16},
        "DECIDER": {"host_sizes": {"pve1": {"cores": 16, "memory_mb": 32768}}},
        "NATS": {"url": cluster.broker.url},
    }
    await cluster.start(parse_config(document, env={}), "r1")
    # 16 cores less the 1-core reserve: 15; the containers already hold 15.
    busy, others = reading(101, cpu_pct=95.0, cores=2), reading(102, cores=13)
    await cluster.publish(fresh(busy, others, host=forged_host()))
    await cluster.drained()
    assert await cluster.intents() == []


async def test_a_sample_whose_node_is_not_its_subjects_node_is_refused(shipped_broker: Any) -> None:
    config = parse_config({"NATS": {"url": shipped_broker.url_for("decider")}}, env={})
    service = DeciderService(config, replica_id="r1")  # the streams as the fixture's setup made them
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    collector = await open_connection(shipped_broker.url_for("collector", "pve1"))
    try:
        await until(lambda: _has_handler(service), what="replica ready")
        js = collector.jetstream()
        forged = fresh(reading(101, cpu_pct=95.0), node="pve2")
        await js.publish(subjects.metrics_subject("pve1"), encode(forged))
        await until(lambda: _counted(service), what="the forged sample refused")
        assert service.handler is not None and service.handler.counters.intents == 0
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await collector.close()


async def _has_handler(service: DeciderService) -> bool:
    return service.handler is not None


async def _counted(service: DeciderService) -> bool:
    counters = service.handler.counters if service.handler is not None else None
    return counters is not None and counters.refused + counters.invalid > 0


async def test_a_failed_state_write_never_exits_the_decider(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    js = cluster.nc.jetstream()
    await js.delete_key_value(subjects.STATE_BUCKET)  # every state write now fails
    await cluster.publish(fresh(reading(101, cpu_pct=95.0)))
    await until(lambda: _retried(replica.service), timeout=10, what="the failed write retried")
    assert not replica.task.done(), "the replica exited on a failed state write"
    await js.create_key_value(bucket=subjects.STATE_BUCKET, history=1)
    await cluster.drained(timeout=20)
    assert [i.vmid for i in await cluster.intents()] == [101]


async def _retried(service: DeciderService) -> bool:
    return service.handler is not None and service.handler.counters.retried > 0


async def test_a_sample_redelivered_after_a_replica_dies_is_not_stale_at_short_intervals(
    cluster: Cluster,
) -> None:
    point = "decider.after-state-write"
    reached = failpoints.hits[point]

    async def paused() -> bool:
        return failpoints.hits[point] > reached

    with failpoints.armed(point, "pause"):
        doomed = await cluster.start(config_for(cluster.broker), "doomed")
        # At a 0.2 s interval the staleness limit (3 intervals) is shorter than the ack wait.
        await cluster.publish(fresh(reading(101, cpu_pct=95.0), interval_s=0.2))
        await until(paused, what="the doomed replica at the failpoint")
    await doomed.kill()
    await cluster.start(config_for(cluster.broker), "survivor")
    await cluster.drained()
    assert [(i.vmid, i.target.cores) for i in await cluster.intents()] == [(101, 4)]


async def test_a_burst_for_one_node_is_not_evicted_before_it_is_decided(broker: Any) -> None:
    async with running_cluster(broker, StreamSettings()) as group:
        start = datetime.now(UTC)
        burst = 120
        for seq in range(1, burst + 1):
            node_sample = sample(reading(101), seq=seq, taken_at=start + timedelta(milliseconds=seq))
            await group.publish(node_sample)
        replica = await group.start(config_for(broker), "late")
        await group.drained(timeout=30)
        assert replica.service.handler is not None
        assert replica.service.handler.counters.samples == burst


async def test_decider_state_keys_expire(broker: Any) -> None:
    async with running_cluster(broker, replace(FAST_REDELIVERY, state_ttl_s=1.0)) as group:
        replica = await group.start(config_for(broker), "r1")
        await group.publish(fresh(reading(101, memory_pct=5.0)))  # starts a window: state written
        await group.drained()
        kv = await group.nc.jetstream().key_value(subjects.STATE_BUCKET)
        assert (await kv.status()).ttl == pytest.approx(1.0)
        store = replica.service.store
        assert store is not None and 101 in store.states_for("pve1")
        await until(lambda: _forgotten(store), timeout=10, what="the local view forgets the expired key")
        with pytest.raises(nats.js.errors.KeyNotFoundError):
            await kv.get(subjects.state_key("pve1", 101))


async def _forgotten(store: Any) -> bool:
    return 101 not in store.states_for("pve1")
