"""Three NATS servers as one JetStream cluster: replicated streams and buckets, provisioning
that refuses more copies than servers, and the stream leader killed mid-burst."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, cast

import pytest
from actuator_harness import EventReader, eventually, intent, publish_intent, set_calls, sim_node

from services.actuator.wiring import node_consumer
from shared import subjects
from shared.config import load_config
from shared.nats_settings import open_connection
from shared.provisioning import BUCKETS, ReplicasError, StreamSettings, provision
from tests.cluster_harness import (
    FAST_ACTUATOR,
    actuator_process,
    decider_process,
    logged_events,
    move_leader,
    server_of,
    stream_leader,
)
from tests.secure_broker import ShippedBroker, ShippedCluster

pytestmark = pytest.mark.integration
STREAMS = (subjects.METRICS_STREAM, subjects.INTENTS_STREAM, subjects.EVENTS_STREAM)


async def test_setup_keeps_three_copies_of_every_stream_and_bucket(shipped_cluster: ShippedCluster) -> None:
    client = await open_connection(shipped_cluster.urls_for("setup"))
    try:
        js = client.jetstream()
        for name in [*STREAMS, *(f"KV_{bucket}" for bucket in BUCKETS)]:
            info = await js.stream_info(name)
            assert info.config.num_replicas == 3, name
            assert info.cluster is not None and info.cluster.leader in {"nats-1", "nats-2", "nats-3"}
            assert len(info.cluster.replicas or []) == 2, name
    finally:
        await client.close()


async def test_asking_for_more_copies_than_servers_is_refused_clearly(
    shipped_cluster: ShippedCluster, shipped_broker: ShippedBroker
) -> None:
    for url, replicas, says in (
        (shipped_cluster.urls_for("setup"), 5, "the cluster 'autoscale' has 3 server(s)"),
        ([shipped_broker.url], 3, "'lxc-autoscale-nats' is not part of a cluster"),
    ):
        client = await open_connection(url)
        try:
            with pytest.raises(ReplicasError, match=r"NATS\.replicas is") as refused:
                await provision(client.jetstream(), StreamSettings(replicas=replicas),
                                server_info=client._server_info)  # fmt: skip
            assert says in str(refused.value)
            assert "at most" in str(refused.value)
        finally:
            await client.close()
    # Without the INFO check the server's own refusal is explained the same way.
    client = await open_connection(shipped_broker.url)
    try:
        with pytest.raises(ReplicasError, match="cannot keep 3 copies"):
            await provision(client.jetstream(), StreamSettings(replicas=3))
    finally:
        await client.close()


async def _publish_retrying(js: Any, item: Any) -> None:
    """A publisher's retry: the same Nats-Msg-Id, so a stored-but-unacknowledged intent is
    not stored twice."""
    for _ in range(200):
        try:
            await publish_intent(js, item)
            return
        except Exception:
            await asyncio.sleep(0.1)
    raise AssertionError(f"intent {item.intent_id} could not be published")


async def _survivors_client(cluster: ShippedCluster, victim: ShippedBroker) -> Any:
    """The test's own client, on the servers that stay up. nats-py's reconnect leaves the
    socket of a failed handshake open for the garbage collector (a ResourceWarning at some
    later test); the services under test reconnect, this observer has no need to."""
    urls = [server.url_for("setup") for server in cluster.servers if server is not victim]
    return await open_connection(urls, allow_reconnect=False)


async def _open_reader(js: Any) -> EventReader:
    """The events reader, once the cluster answers again (a new meta leader may be in the
    middle of its election just after a server is lost)."""

    async def attempt() -> EventReader | None:
        try:
            return await EventReader.open(js)
        except Exception:
            return None

    return cast(EventReader, await eventually(attempt, timeout_s=60, interval_s=0.5))


@pytest.mark.shipped_nodes("pve1")
async def test_killing_the_stream_leader_mid_burst_loses_no_intent_and_applies_none_twice(
    shipped_cluster: ShippedCluster, tmp_path: Path
) -> None:
    vmids = list(range(101, 141))
    sim = sim_node(tmp_path / "node", *((v, 2, 1024) for v in vmids))
    config = tmp_path / "autoscale.yaml"
    config.write_text(FAST_ACTUATOR)
    log = tmp_path / "actuator.log"
    # As `lxc-autoscale setup --node pve1` does with NATS.replicas: 3.
    consumer = node_consumer(load_config(config, env={}).actuator, "pve1")
    setup = await open_connection(shipped_cluster.urls_for("setup"), allow_reconnect=False)
    try:
        await setup.jetstream().add_consumer(subjects.INTENTS_STREAM, consumer)
    finally:
        await setup.close()
    actuator = actuator_process(shipped_cluster, sim, config, "pve1", log)
    try:
        # The server the actuator is on leads the intents stream, so its loss is both.
        victim = await server_of(shipped_cluster, "lxc-autoscale-actuator", timeout_s=60)
        assert victim.member is not None
        client = await _survivors_client(shipped_cluster, victim)
        try:
            js = client.jetstream(timeout=5)
            await move_leader(client, subjects.INTENTS_STREAM, victim.member.server_name)
            intents = [intent(v, target=(3, 1536), source_id=f"burst-{v}") for v in vmids]
            for item in intents[:20]:
                await _publish_retrying(js, item)
            victim.kill()
            for item in intents[20:]:
                await _publish_retrying(js, item)
            new_leader = await eventually(lambda: _leader_or_none(js), timeout_s=30)
            assert new_leader != victim.member.server_name

            reader = await _open_reader(js)
            events = await reader.take(len(vmids), timeout_s=90)
            events += await reader.nothing_more(wait_s=2.0)
            assert actuator.poll() is None, "the actuator must ride over the loss, not exit"
        finally:
            await client.close()
    finally:
        actuator.terminate()
        actuator.wait(15)
    assert sorted(e.intent_id for e in events) == sorted(i.intent_id for i in intents)
    assert {e.outcome for e in events} == {"applied"}, [e for e in events if e.outcome != "applied"]
    for vmid in vmids:
        assert len(set_calls(sim, vmid)) == 1, (vmid, set_calls(sim, vmid))
        conf = sim.read_conf(vmid)
        assert (conf["cores"], conf["memory"]) == ("3", "1536")
    reconnects = [json.loads(line) for line in log.read_text().splitlines() if '"nats_reconnected"' in line]
    assert reconnects, "the actuator's connection moved to another server"


async def test_a_service_started_while_the_streams_have_no_leader_waits_and_then_serves(
    shipped_cluster: ShippedCluster, tmp_path: Path
) -> None:
    """With two of three servers gone no stream has a leader (no majority): a decider
    started then says it is waiting, keeps running, and is ready once a server is back."""
    first, second, third = shipped_cluster.servers
    second.kill()
    third.kill()
    config = tmp_path / "autoscale.yaml"
    config.write_text("DECIDER:\n  batch: 16\n")
    log, quitter_log = tmp_path / "decider.log", tmp_path / "quitter.log"
    decider = decider_process(shipped_cluster, config, "no-leader", log)
    quitter = decider_process(shipped_cluster, config, "quitter", quitter_log)
    try:

        async def waiting() -> bool:
            return all("waiting_for_nats" in logged_events(path) for path in (log, quitter_log))

        await eventually(waiting, timeout_s=60, interval_s=0.5)
        assert decider.poll() is None, log.read_text()
        assert "ready" not in logged_events(log)
        quitter.terminate()  # asked to stop while it waits: it stops, cleanly
        assert await asyncio.to_thread(quitter.wait, 15) == 0, quitter_log.read_text()
        second.start()

        async def ready() -> bool:
            return "ready" in logged_events(log)

        await eventually(ready, timeout_s=90, interval_s=0.5)
        assert decider.poll() is None, log.read_text()
    finally:
        for process in (decider, quitter):
            process.terminate()
            process.wait(15)
    assert first.running


async def _leader_or_none(js: Any) -> str | None:
    try:
        return await stream_leader(js, subjects.INTENTS_STREAM)
    except Exception:
        return None
