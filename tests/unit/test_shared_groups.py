"""The horizontal groups' wire contract: group intents beside scale intents on one subject,
group events readable by every events consumer, bucket keys and records, the tag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgpack
import pytest

from shared import subjects
from shared.codec import CodecError, decode, decode_intent, encode
from shared.event_text import direction, format_line
from shared.groups import ActionLock, Member, MembershipRecord, group_of_tags, group_tag
from shared.models import (
    DecisionReason,
    GroupEventInfo,
    GroupIntent,
    ResourceSize,
    ScaleEvent,
    ScaleIntent,
    group_intent_id_for,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
REASON = DecisionReason(rule="group-scale-out", summary="group web cpu 91% > 80%")


def group_intent(**extra: object) -> GroupIntent:
    values: dict[str, object] = {
        "group": "web", "action": "scale-out", "node": "pve1", "vmid": 200,
        "reason": REASON, "source_id": "pve1:boot:7", "created_at": NOW, "ttl_s": 120.0,
    }  # fmt: skip
    values.update(extra)
    return GroupIntent.build(**values)  # type: ignore[arg-type]


def scale_intent() -> ScaleIntent:
    return ScaleIntent.build(
        node="pve1", vmid=101, expected=ResourceSize(cores=2, memory_mb=1024),
        target=ResourceSize(cores=3, memory_mb=1024), reason=REASON, source_id="s",
        created_at=NOW, ttl_s=60,
    )  # fmt: skip


def test_decode_intent_tells_group_intents_from_scale_intents_on_one_subject() -> None:
    group, scale = group_intent(), scale_intent()
    assert decode_intent(encode(group)) == group
    assert decode_intent(encode(scale)) == scale
    assert isinstance(decode_intent(encode(scale)), ScaleIntent)


def test_a_group_intent_is_refused_by_a_consumer_that_only_knows_scale_intents() -> None:
    # What an actuator from before groups does: a clear CodecError, never a wrong resize.
    with pytest.raises(CodecError, match="kind"):
        decode(encode(group_intent()), ScaleIntent)


def test_an_unknown_intent_kind_is_refused_by_name() -> None:
    raw = msgpack.unpackb(encode(group_intent()))
    raw["kind"] = "teleport"
    with pytest.raises(CodecError, match="unknown kind 'teleport'"):
        decode_intent(msgpack.packb(raw))


def test_the_group_intent_id_is_deterministic_and_bound_to_its_content() -> None:
    first, again = group_intent(), group_intent()
    assert first.intent_id == again.intent_id  # two replicas, one sample: one id
    assert group_intent(source_id="pve1:boot:8").intent_id != first.intent_id
    assert group_intent(action="scale-in").intent_id != first.intent_id
    assert first.intent_id == group_intent_id_for("web", "scale-out", "pve1", 200, "pve1:boot:7")
    raw = msgpack.unpackb(encode(first))
    raw["vmid"] = 201  # a forged target no longer matches the id
    with pytest.raises(CodecError, match="intent_id does not match"):
        decode_intent(msgpack.packb(raw))


@pytest.mark.parametrize("name", ["Web", "-web", "web-", "a.b", "a b", "x" * 41, ""])
def test_group_names_that_cannot_be_a_tag_or_key_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        group_intent(group=name)
    with pytest.raises(ValueError):
        subjects.group_members_key(name)


def test_a_group_event_decodes_as_a_scale_event_and_reads_as_one_line() -> None:
    event = ScaleEvent(
        event_id="e1", intent_id="a" * 32, node="pve1", vmid=201, outcome="applied", detail="cloned",
        reason=REASON, occurred_at=NOW,
        group=GroupEventInfo(name="web", action="scale-out", source_vmid=200, new_vmid=201,
                             steps=("snapshot", "clone", "net", "tag", "start"), ip="10.0.0.21/24"),
    )  # fmt: skip
    back = decode(encode(event), ScaleEvent)
    assert back == event and direction(back) == "scale-out"
    line = format_line(back)
    assert "group web scale-out 200→201" in line and "ip 10.0.0.21/24" in line
    assert "steps snapshot,clone,net,tag,start" in line and "(group web cpu 91% > 80%)" in line
    vertical = event.model_copy(update={"group": None})
    assert "scale-out" not in format_line(vertical)


def test_bucket_keys_are_one_token_per_part() -> None:
    assert subjects.GROUPS_BUCKET == "autoscale_groups"
    assert subjects.group_members_key("web") == "members.web"
    assert subjects.group_id_key(201) == "ids.201"
    assert subjects.group_ip_key("web", "10.0.0.21/24") == "ips.web.10-0-0-21"
    assert subjects.group_action_key("web") == "action.web"
    with pytest.raises(ValueError):
        subjects.group_ip_key("web", "10.0.0.*")
    with pytest.raises(ValueError):
        subjects.group_id_key(99)


def test_the_tag_names_the_group_and_a_malformed_tag_names_none() -> None:
    assert group_tag("web") == "autoscale-group-web"
    assert group_of_tags(("prod", "autoscale-group-web")) == "web"
    assert group_of_tags(("autoscale-group-", "autoscale-group-Bad.Name")) is None
    assert group_of_tags(()) is None


def test_records_round_trip_as_json_and_scale_in_takes_the_newest_clone() -> None:
    record = MembershipRecord(
        group="web",
        members=(
            Member(vmid=200, node="pve1", created=False),
            Member(vmid=205, node="pve2", created=True, created_at=NOW),
            Member(vmid=203, node="pve1", created=True, created_at=NOW + timedelta(minutes=5)),
        ),
        updated_at=NOW,
    )
    assert MembershipRecord.from_bytes(record.to_bytes()) == record
    assert b'"members"' in record.to_bytes()  # readable with any NATS tool
    assert [m.vmid for m in record.clones()] == [205, 203]  # newest last, whatever its id
    lock = ActionLock(
        group="web", action="scale-out", intent_id="b" * 32, node="pve1", vmid=200,
        members_before=(200,), taken_at=NOW, expires_at=NOW + timedelta(minutes=10),
    )  # fmt: skip
    assert ActionLock.from_bytes(lock.to_bytes()) == lock
