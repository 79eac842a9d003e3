"""The decider service against a real nats-server: samples in, intents out, state in KV."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from decider_harness import FAST_REDELIVERY, Cluster, Replica, config_for, fresh, running_cluster, until
from support import metric, reading, sample

from services.decider.policy import ContainerState, PauseEntry, decode_state, encode_state
from services.decider.service import DeciderService
from shared import failpoints, subjects
from shared.codec import encode
from shared.config import parse_config
from shared.dry_run import store_dry_run
from shared.models import NodeSample
from shared.nats_settings import open_connection
from shared.provisioning import provision


@pytest.fixture
async def cluster(broker: Any) -> AsyncIterator[Cluster]:
    async with running_cluster(broker) as group:
        yield group


# ------------------------------------------------------------------ basic flow


async def test_a_busy_container_gets_an_intent_with_its_id_as_the_message_id(cluster: Cluster) -> None:
    await cluster.start(config_for(cluster.broker), "r1")
    counted = _decider_metrics()
    await cluster.publish(fresh(reading(101, cpu_pct=95.0), reading(102)))
    await cluster.drained()
    (intent,) = await cluster.intents()
    assert _moved(counted) == {"samples": 1, "decisions": 2, "intents": 1, "durations": 1}
    assert (intent.vmid, intent.target.cores) == (101, 4)
    assert intent.source_id == "pve1:boot-a:1"
    kv = await cluster.nc.jetstream().key_value(subjects.STATE_BUCKET)
    state = decode_state((await kv.get(subjects.state_key("pve1", 101))).value)
    assert state.pending is not None and state.pending.intent.intent_id == intent.intent_id
    with pytest.raises(nats.js.errors.KeyNotFoundError):
        await kv.get(subjects.state_key("pve1", 102))  # nothing to do, nothing written


async def test_a_malformed_sample_is_set_aside_and_the_replica_goes_on(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    js = cluster.nc.jetstream()
    invalid = metric("autoscale_decider_samples_invalid_total")
    await js.publish(subjects.metrics_subject("pve1"), b"\xc1 not msgpack")
    await js.publish(subjects.metrics_subject("pve1"), encode(reading(101)))  # valid msgpack, wrong model
    await cluster.publish(fresh(reading(101, cpu_pct=95.0)))
    await cluster.drained()
    assert metric("autoscale_decider_samples_invalid_total") == invalid + 2
    assert [i.vmid for i in await cluster.intents()] == [101]
    assert replica.service.handler is not None
    assert replica.service.handler.counters.invalid == 2


async def test_a_stale_sample_gives_no_intent(cluster: Cluster) -> None:
    await cluster.start(config_for(cluster.broker), "r1")
    old = datetime.now(UTC) - timedelta(minutes=5)
    ignored = metric("autoscale_decider_samples_ignored_total", node="pve1")
    await cluster.publish(fresh(reading(101, cpu_pct=0.0, cores=4), taken_at=old))
    await cluster.drained()
    assert await cluster.intents() == []
    assert metric("autoscale_decider_samples_ignored_total", node="pve1") == ignored + 1


async def test_a_lost_compare_and_set_is_counted_and_decided_again(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    store = replica.service.store
    assert store is not None
    await store.stop()  # its view no longer follows the bucket: the next write races another "replica"
    kv = await cluster.nc.jetstream().key_value(subjects.STATE_BUCKET)
    await kv.put(subjects.state_key("pve1", 101), encode_state(ContainerState()))
    conflicts = metric("autoscale_decider_state_conflicts_total", node="pve1")
    await cluster.publish(fresh(reading(101, cpu_pct=95.0)))
    await cluster.drained()
    assert metric("autoscale_decider_state_conflicts_total", node="pve1") == conflicts + 1
    assert replica.service.handler is not None and replica.service.handler.counters.conflicts == 1
    assert [i.vmid for i in await cluster.intents()] == [101]  # decided again, published once


async def test_a_pause_written_to_the_policy_bucket_takes_effect_without_restart(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    kv = await cluster.nc.jetstream().key_value(subjects.POLICY_BUCKET)
    await kv.put(
        "pause.pve1.101", PauseEntry(mode="scale-up", reason="maintenance").model_dump_json().encode()
    )
    await until(lambda: _paused(replica), what="pause seen")
    await cluster.publish(fresh(reading(101, cpu_pct=95.0), reading(102, cpu_pct=95.0)))
    await cluster.drained()
    assert [i.vmid for i in await cluster.intents()] == [102]


async def test_a_node_pause_stops_that_node_only_and_resuming_lifts_it(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    kv = await cluster.nc.jetstream().key_value(subjects.POLICY_BUCKET)
    await kv.put("pause.pve1.all", PauseEntry(mode="all", reason="firmware").model_dump_json().encode())
    await until(lambda: _paused(replica), what="node pause seen")
    await cluster.publish(fresh(reading(101, cpu_pct=95.0)))
    await cluster.publish(fresh(reading(201, cpu_pct=95.0), node="pve2"))
    await cluster.drained()
    assert [(i.node, i.vmid) for i in await cluster.intents()] == [("pve2", 201)]

    await kv.delete("pause.pve1.all")
    await until(lambda: _not_paused(replica), what="node pause lifted")
    await cluster.publish(fresh(reading(101, cpu_pct=95.0), seq=2))
    await cluster.drained()
    assert [(i.node, i.vmid) for i in await cluster.intents()] == [("pve1", 101)]


async def test_the_dry_run_switch_marks_intents_until_it_is_removed(cluster: Cluster) -> None:
    replica = await cluster.start(config_for(cluster.broker), "r1")
    kv = await cluster.nc.jetstream().key_value(subjects.POLICY_BUCKET)
    await store_dry_run(kv, "on", datetime.now(UTC), "watch first")
    await until(lambda: _dry_run(replica, True), what="dry-run seen")
    await cluster.publish(fresh(reading(101, cpu_pct=95.0)))
    await cluster.drained()
    [dry] = await cluster.intents()
    assert dry.dry_run is True

    await store_dry_run(kv, "config", datetime.now(UTC))  # the file says dry_run: false
    await until(lambda: _dry_run(replica, False), what="dry-run lifted")
    # Same size, still busy: the dry run is not waited for, a real intent follows at once.
    await cluster.publish(fresh(reading(101, cpu_pct=95.0), seq=2))
    await cluster.drained()
    [real] = await cluster.intents()
    assert (real.dry_run, real.target) == (False, dry.target)


async def _dry_run(replica: Replica, expected: bool) -> bool:
    return replica.service.policy.view.dry_run is expected


async def _not_paused(replica: Replica) -> bool:
    return replica.service.policy.view.pauses.empty


_DECIDER_SERIES = {
    "samples": ("autoscale_decider_samples_total", {"node": "pve1"}),
    "decisions": ("autoscale_decider_decisions_total", {"node": "pve1"}),
    "intents": (
        "autoscale_decider_intents_total",
        {"node": "pve1", "direction": "scale-up", "rule": "cpu-above-upper"},
    ),
    "durations": ("autoscale_decider_decide_duration_seconds_count", {"node": "pve1"}),
}


def _decider_metrics() -> dict[str, float]:
    return {key: metric(name, **labels) for key, (name, labels) in _DECIDER_SERIES.items()}


def _moved(before: dict[str, float]) -> dict[str, float]:
    return {key: value - before[key] for key, value in _decider_metrics().items()}


async def _paused(replica: Replica) -> bool:
    return not replica.service.policy.view.pauses.empty


async def test_the_config_file_is_reloaded_when_it_changes(cluster: Cluster, tmp_path: Any) -> None:
    path = tmp_path / "autoscale.yaml"
    path.write_text(f"DEFAULT:\n  dry_run: false\nNATS:\n  url: {cluster.broker.url}\n")
    config = parse_config({"DEFAULT": {"dry_run": False}, "NATS": {"url": cluster.broker.url}}, env={})
    service = DeciderService(config, config_path=path)
    before = service.policy.view.version
    path.write_text(f"DEFAULT:\n  dry_run: true\nNATS:\n  url: {cluster.broker.url}\n")
    import os

    os.utime(path, (1, 1))
    assert service.policy.reload_if_changed() is True
    assert service.policy.view.dry_run is True
    assert service.policy.view.version != before
    path.write_text("DEFAULT:\n  min_cores: 9\n  max_cores: 2\n")  # invalid: kept the old policy
    os.utime(path, (2, 2))
    assert service.policy.reload_if_changed() is False
    assert service.policy.view.dry_run is True


# ------------------------------------------------------------------ replicas


def scenario_cycle(
    cycle: int, sizes: dict[tuple[str, int], tuple[int, int]], start: datetime, boot: str
) -> list[NodeSample]:
    """A demo-like load: on each of three nodes, one container ramps up, one idles, one is steady."""
    load = {101: min(99.0, 60.0 + 10 * cycle), 102: 2.0, 103: 50.0}
    memory = {101: 85.0 if cycle % 3 == 0 else 50.0, 102: 5.0, 103: 50.0}
    samples = []
    for node in ("pve1", "pve2", "pve3"):
        readings = [
            reading(vmid, cores=sizes[(node, vmid)][0], memory_mb=sizes[(node, vmid)][1],
                    cpu_pct=load[vmid], memory_pct=memory[vmid])
            for vmid in (101, 102, 103)
        ]  # fmt: skip
        samples.append(
            sample(
                *readings, node=node, seq=cycle, boot_id=boot, taken_at=start + timedelta(seconds=10 * cycle)
            )
        )
    return samples


async def run_scenario(
    cluster: Cluster, boot: str, cycles: int = 8
) -> set[tuple[str, int, int, int, int, int, int]]:
    start = datetime.now(UTC)
    sizes = {(n, v): (2, 2048) for n in ("pve1", "pve2", "pve3") for v in (101, 102, 103)}
    seen: set[tuple[str, int, int, int, int, int, int]] = set()
    for cycle in range(1, cycles + 1):
        for node_sample in scenario_cycle(cycle, sizes, start, boot):
            await cluster.publish(node_sample)
        await cluster.drained()
        for intent in await cluster.intents():
            sizes[(intent.node, intent.vmid)] = (intent.target.cores, intent.target.memory_mb)  # "applied"
            seen.add((intent.node, intent.vmid, intent.expected.cores, intent.expected.memory_mb,
                      intent.target.cores, intent.target.memory_mb, cycle))  # fmt: skip
    return seen


async def test_three_replicas_decide_exactly_what_one_replica_decides(broker: Any) -> None:
    results = []
    for count in (1, 3):
        client = await open_connection(broker.url)
        js = client.jetstream()
        for bucket in (subjects.STATE_BUCKET,):
            with contextlib.suppress(Exception):
                await js.delete_key_value(bucket)
        with contextlib.suppress(Exception):
            await js.delete_consumer(subjects.METRICS_STREAM, subjects.DECIDER_CONSUMER)
        await provision(js, FAST_REDELIVERY)
        group = Cluster(broker, client)
        for index in range(count):
            await group.start(config_for(broker), f"r{index}")
        # A new collector boot per run, so the second run's intents are not deduplicated
        # against the first run's by the intents stream.
        results.append(await run_scenario(group, boot=f"boot-{count}"))
        for replica in group.replicas:
            await replica.halt()
        await client.close()
    one, three = results
    assert len(one) >= 6  # scale-ups, scale-downs after the window, memory both ways
    assert three == one


async def test_a_replica_killed_mid_decision_loses_nothing_and_duplicates_nothing(cluster: Cluster) -> None:
    point = "decider.after-state-write"
    before = failpoints.hits[point]  # the counter is per process: other tests reach it too

    async def paused() -> bool:
        return failpoints.hits[point] == before + 1

    # Hang like a frozen process once the state is written, never publishing or acking.
    with failpoints.armed(point, "pause"):
        doomed = await cluster.start(config_for(cluster.broker), "doomed")
        await cluster.publish(fresh(reading(101, cpu_pct=95.0), reading(102, memory_pct=90.0)))
        await until(paused, what="the doomed replica at the failpoint")
    await doomed.kill()
    survivor = await cluster.start(config_for(cluster.broker), "survivor")
    await cluster.drained()
    intents = await cluster.intents()
    assert sorted((i.vmid, i.target.cores, i.target.memory_mb) for i in intents) == [
        (101, 4, 1024),
        (102, 2, 2730),
    ]
    assert survivor.service.handler is not None
    assert survivor.service.handler.counters.samples == 1


async def test_a_redelivered_sample_gives_no_duplicate_intent(cluster: Cluster) -> None:
    await cluster.start(config_for(cluster.broker), "r1")
    await cluster.start(config_for(cluster.broker), "r2")
    node_sample = fresh(reading(101, cpu_pct=95.0))
    await cluster.publish(node_sample)
    await cluster.drained()
    js = cluster.nc.jetstream()
    # The same sample again under a new stream sequence, as after a collector retry.
    await js.publish(subjects.metrics_subject("pve1"), encode(node_sample))
    await cluster.drained()
    assert len(await cluster.intents()) == 1
    assert (await js.stream_info(subjects.INTENTS_STREAM)).state.messages == 0


async def test_the_replica_survives_a_broker_restart(cluster: Cluster) -> None:
    await cluster.start(config_for(cluster.broker), "r1")
    cluster.broker.restart()
    await until(lambda: _published(cluster, fresh(reading(101, cpu_pct=95.0))), timeout=15,
                 what="JetStream back after the restart")  # fmt: skip
    await cluster.drained(timeout=20)
    assert [i.vmid for i in await cluster.intents()] == [101]


async def _published(cluster: Cluster, node_sample: NodeSample) -> bool:
    try:
        await cluster.publish(node_sample)
    except Exception:  # JetStream is not ready in the first moments after a restart
        return False
    return True
