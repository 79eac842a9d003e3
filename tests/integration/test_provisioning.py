from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nats.js.api import RetentionPolicy

from shared import subjects
from shared.codec import decode, encode
from shared.models import DecisionReason, ResourceSize, ScaleIntent
from shared.provisioning import provision


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
