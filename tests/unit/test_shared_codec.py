from __future__ import annotations

from datetime import UTC, datetime

import msgpack
import pytest

from shared.codec import MAX_MESSAGE_BYTES, CodecError, decode, encode
from shared.models import DecisionReason, NodeSample, ResourceSize, ScaleEvent, ScaleIntent
from tests.support import reading, sample


def _intent() -> ScaleIntent:
    return ScaleIntent.build(
        node="pve1",
        vmid=101,
        expected=ResourceSize(cores=2, memory_mb=1024),
        target=ResourceSize(cores=3, memory_mb=1024),
        reason=DecisionReason(rule="cpu-above-upper", summary="cpu 95% > 80%", inputs={"cpu_pct": 95.0}),
        source_id="pve1:boot:7",
        created_at=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        ttl_s=120,
    )


def test_every_wire_model_survives_a_round_trip() -> None:
    node_sample = sample(reading(101), reading(102, cpu_pct=None, cpu_missing="first-sample"))
    intent = _intent()
    event = ScaleEvent(
        event_id="e1",
        intent_id=intent.intent_id,
        node="pve1",
        vmid=101,
        outcome="applied",
        detail="applied",
        before=intent.expected,
        after=intent.target,
        occurred_at=datetime(2026, 1, 5, 12, 0, 1, tzinfo=UTC),
    )
    assert decode(encode(node_sample), NodeSample) == node_sample
    assert decode(encode(intent), ScaleIntent) == intent
    assert decode(encode(event), ScaleEvent) == event
    assert event.scaled_up and not event.scaled_down


def test_the_intent_id_is_deterministic_and_tied_to_its_content() -> None:
    assert _intent().intent_id == _intent().intent_id
    tampered = msgpack.unpackb(encode(_intent()))
    tampered["target"]["cores"] = 4
    with pytest.raises(CodecError, match="intent_id does not match"):
        decode(msgpack.packb(tampered), ScaleIntent)


def test_an_unknown_schema_version_is_refused_with_a_clear_error() -> None:
    raw = msgpack.unpackb(encode(_intent()))
    raw["schema_version"] = 2
    with pytest.raises(CodecError, match=r"unsupported schema_version 2.*understands 1"):
        decode(msgpack.packb(raw), ScaleIntent)
    del raw["schema_version"]
    with pytest.raises(CodecError, match="unsupported schema_version None"):
        decode(msgpack.packb(raw), ScaleIntent)


@pytest.mark.parametrize("version", [1.0, True, "1"], ids=["float 1.0", "true", "string"])
def test_schema_version_must_be_the_integer_1(version: object) -> None:
    raw = sample(reading()).model_dump(mode="json")
    raw["schema_version"] = version
    with pytest.raises(CodecError, match="unsupported schema_version"):
        decode(msgpack.packb(raw), NodeSample)


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", b"not msgpack at all \xff\xfe", msgpack.packb([1, 2, 3]), msgpack.packb("text")],
    ids=["empty", "reserved-byte", "garbage", "a-list", "a-string"],
)
def test_garbage_is_a_codec_error_not_a_crash(payload: bytes) -> None:
    with pytest.raises(CodecError):
        decode(payload, ScaleIntent)


def test_oversize_payloads_are_refused_before_parsing() -> None:
    with pytest.raises(CodecError, match="over the"):
        decode(b"\x00" * (MAX_MESSAGE_BYTES + 1), NodeSample)


def test_a_sample_with_too_many_containers_is_refused() -> None:
    raw = msgpack.unpackb(encode(sample(reading(101))))
    raw["containers"] = raw["containers"] * 10_001
    with pytest.raises(CodecError):
        decode(msgpack.packb(raw), NodeSample)


def test_invalid_fields_are_named_in_the_error() -> None:
    raw = msgpack.unpackb(encode(sample(reading(101))))
    raw["containers"][0]["vmid"] = 42
    raw["node"] = "pve1.evil.>"
    with pytest.raises(CodecError) as caught:
        decode(msgpack.packb(raw), NodeSample)
    assert "containers.0.vmid" in str(caught.value)
    assert "node" in str(caught.value)


def test_a_failed_reading_must_say_why_it_is_missing() -> None:
    with pytest.raises(ValueError, match="cpu_missing"):
        reading(101, cpu_pct=None)


def test_unknown_fields_are_refused() -> None:
    raw = msgpack.unpackb(encode(_intent()))
    raw["shell"] = "rm -rf /"
    with pytest.raises(CodecError, match="shell"):
        decode(msgpack.packb(raw), ScaleIntent)


def test_an_invalid_model_is_not_sent() -> None:
    intent = _intent().model_copy(update={"vmid": 5})
    with pytest.raises(CodecError, match="refusing to send"):
        encode(intent)
