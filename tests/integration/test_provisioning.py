from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import RetentionPolicy, StreamConfig, StreamSource

from shared import subjects
from shared.codec import decode, encode
from shared.models import DecisionReason, ResourceSize, ScaleIntent
from shared.nats_settings import open_connection
from shared.provisioning import (
    NotProvisionedError,
    StreamSettings,
    decider_consumer_config,
    provision,
    verify,
)
from tests.secure_broker import ShippedBroker

ROOT = Path(__file__).resolve().parents[2]


def _intent(source: str = "pve1:boot:1") -> ScaleIntent:
    return ScaleIntent.build(
        node="pve1",
        vmid=101,
        expected=ResourceSize(cores=2, memory_mb=1024),
        target=ResourceSize(cores=3, memory_mb=1024),
        reason=DecisionReason(rule="cpu-above-upper", summary="cpu 95% > 80%"),
        source_id=source,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        ttl_s=60,
    )


async def test_provisioning_twice_keeps_streams_and_their_messages(nc: Any) -> None:
    js = nc.jetstream()
    intent = _intent()
    await js.publish(
        subjects.intents_subject("pve1"), encode(intent), headers={"Nats-Msg-Id": intent.intent_id}
    )
    await provision(js)
    await provision(js)
    info = await js.stream_info(subjects.INTENTS_STREAM)
    assert info.config.retention == RetentionPolicy.WORK_QUEUE
    assert info.config.duplicate_window == 120
    assert info.state.messages == 1
    events = await js.stream_info(subjects.EVENTS_STREAM)
    assert events.config.retention == RetentionPolicy.LIMITS
    assert events.config.max_age and events.config.max_age > 0
    kv = await js.key_value(subjects.STATE_BUCKET)
    assert (await kv.put("pve1.101", b"x")) >= 1


async def test_a_duplicate_intent_is_stored_once(nc: Any) -> None:
    js = nc.jetstream()
    intent = _intent()
    subject = subjects.intents_subject("pve1")
    first = await js.publish(subject, encode(intent), headers={"Nats-Msg-Id": intent.intent_id})
    second = await js.publish(subject, encode(intent), headers={"Nats-Msg-Id": intent.intent_id})
    assert not first.duplicate
    assert second.duplicate
    info = await js.stream_info(subjects.INTENTS_STREAM)
    assert info.state.messages == 1
    other = _intent(source="pve1:boot:2")
    await js.publish(subject, encode(other), headers={"Nats-Msg-Id": other.intent_id})
    info = await js.stream_info(subjects.INTENTS_STREAM)
    assert info.state.messages == 2
    sub = await js.pull_subscribe(subject, durable="t", stream=subjects.INTENTS_STREAM)
    msgs = await sub.fetch(2, timeout=2)
    assert [decode(m.data, ScaleIntent).source_id for m in msgs] == ["pve1:boot:1", "pve1:boot:2"]


async def test_a_service_on_a_broker_setup_has_not_prepared_is_told_what_is_missing(broker: Any) -> None:
    client = await open_connection(broker.url)
    try:
        with pytest.raises(NotProvisionedError) as refused:
            await verify(
                client.jetstream(), service="decider",
                streams=[subjects.METRICS_STREAM, subjects.INTENTS_STREAM],
                consumers=[(subjects.METRICS_STREAM, decider_consumer_config(StreamSettings()))],
                buckets=[subjects.STATE_BUCKET, subjects.POLICY_BUCKET],
            )  # fmt: skip
        message = str(refused.value)
        for missing in ("stream AUTOSCALE_METRICS", "stream AUTOSCALE_INTENTS", "consumer deciders",
                        "bucket autoscale_state", "bucket autoscale_policy"):  # fmt: skip
            assert missing in message
        assert "lxc-autoscale setup" in message
        names = await client.jetstream().streams_info()
        assert names == []  # checking created nothing
    finally:
        await client.close()


async def test_a_stream_changed_behind_the_services_backs_is_refused(nc: Any) -> None:
    js = nc.jetstream()
    await verify(js, service="actuator", streams=[subjects.EVENTS_STREAM])
    await js.update_stream(
        StreamConfig(
            name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_ALL], max_age=60.0,
            sources=[StreamSource(name=subjects.METRICS_STREAM)],
        )
    )  # fmt: skip
    with pytest.raises(NotProvisionedError) as refused:
        await verify(js, service="actuator", streams=[subjects.EVENTS_STREAM])
    assert "stream AUTOSCALE_EVENTS has max_age 60.0" in str(refused.value)
    assert "sources" in str(refused.value)
    await provision(js)  # setup puts it back
    await verify(js, service="actuator", streams=[subjects.EVENTS_STREAM])


async def test_setup_makes_each_nodes_actuator_consumer_and_never_logs_the_password(
    shipped_broker: ShippedBroker, tmp_path: Path
) -> None:
    user, password = shipped_broker.credentials("setup")
    url = f"nats://{user}:{password}@127.0.0.1:{shipped_broker.port}"
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text("ACTUATOR:\n  node: pve7\n")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "setup", "--config", str(config), "--nats-url", url,
         "--node", "pve8", "--log-format", "json", "--log-level", "DEBUG"],
        cwd=ROOT, env={**os.environ, "AUTOSCALE_NODES": "pve9, pve1"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert password not in output
    assert f"nats://***@127.0.0.1:{shipped_broker.port}" in output
    client = await open_connection(url)
    try:
        for node in ("pve1", "pve7", "pve8", "pve9"):
            info = await client.jetstream().consumer_info(
                subjects.INTENTS_STREAM, subjects.actuator_consumer(node)
            )
            assert info.config.filter_subject == subjects.intents_subject(node)
    finally:
        await client.close()


def test_an_actuator_without_its_consumer_refuses_to_start_and_names_it(
    nc: Any, broker: Any, tmp_path: Path
) -> None:
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text("ACTUATOR:\n  node: pve1\n")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "actuator", "--config", str(config), "--nats-url", broker.url,
         "--pct", "/bin/false", "--host-cores", "16", "--host-memory-mb", "32768", "--log-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "consumer actuator-pve1 on stream AUTOSCALE_INTENTS does not exist" in done.stderr
    assert "lxc-autoscale setup" in done.stderr
