"""The actuator against a real nats-server and the simulated pct: one intent, one outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest
from actuator_harness import (
    EventReader,
    eventually,
    expired_intent,
    intent,
    publish_intent,
    publish_raw,
    queue_empty,
    running_actuator,
    set_calls,
    sim_node,
)

from services.actuator.records import JournalEntry
from shared import subjects
from shared.codec import encode

pytestmark = pytest.mark.integration


async def test_an_intent_resizes_the_container_and_reports_applied_with_before_and_after(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    item = intent(target=(3, 2048))
    async with running_actuator(nc, sim):
        await publish_intent(js, item)
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("applied", "resized")
    assert event.intent_id == item.intent_id
    assert (event.before.cores, event.before.memory_mb) == (2, 1024)  # type: ignore[union-attr]
    assert (event.after.cores, event.after.memory_mb) == (3, 2048)  # type: ignore[union-attr]
    assert event.target == item.target and event.reason == item.reason
    assert event.attempts == 1 and event.duration_ms > 0
    assert sim.read_conf(101)["cores"] == "3" and sim.read_conf(101)["memory"] == "2048"
    assert set_calls(sim) == [["set", "101", "-cores", "3", "-memory", "2048"]]


async def test_the_intent_leaves_the_queue_only_after_its_event_is_stored(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent())
        await reader.take(1)

        async def queue_empty() -> bool:
            info = await js.stream_info(subjects.INTENTS_STREAM)
            return bool(info.state.messages == 0)

        await eventually(queue_empty)
        info = await js.consumer_info(subjects.INTENTS_STREAM, subjects.actuator_consumer("pve1"))
    assert info.num_pending == 0 and info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_the_original_size_is_saved_once_before_the_first_change(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(expected=(2, 1024), target=(3, 1024), source_id="a"))
        await reader.take(1)
        await publish_intent(js, intent(expected=(3, 1024), target=(4, 2048), source_id="b"))
        second = await reader.take(1)
    assert second[0].outcome == "applied"
    backups = await js.key_value(subjects.BACKUP_BUCKET)
    stored = (await backups.get(subjects.state_key("pve1", 101))).value
    assert b'"cores":2' in stored and b'"memory_mb":1024' in stored


@pytest.mark.parametrize(
    ("name", "build", "detail", "conf_cores"),
    [
        ("stale", lambda: intent(expected=(1, 512), target=(3, 1024)), "stale", "2"),
        ("already applied", lambda: intent(expected=(1, 1024), target=(2, 1024)), "already-applied", "2"),
        ("dry run", lambda: intent(dry_run=True), "dry-run", "2"),
        ("expired", lambda: expired_intent(), "expired", "2"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_intents_that_must_not_change_anything_are_skipped_with_the_reason(
    nc: Any, tmp_path: Path, name: str, build: Any, detail: str, conf_cores: str
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    item = build()
    async with running_actuator(nc, sim):
        await publish_intent(js, item)
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("skipped", detail)
    assert event.dry_run is item.dry_run
    assert sim.read_conf(101)["cores"] == conf_cores
    assert set_calls(sim) == []


async def test_a_target_beyond_the_host_is_rejected_and_never_reaches_pct(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(target=(17, 1024), source_id="too-many-cores"))
        await publish_intent(js, intent(target=(2, 40000), source_id="too-much-memory"))
        events = await reader.take(2)
    assert sorted(e.detail for e in events) == ["invalid-cores", "invalid-memory"]
    assert {e.outcome for e in events} == {"rejected"}
    assert sim.pct_calls() == []


async def test_an_intent_for_another_node_is_rejected(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js, node="pve2")
    async with running_actuator(nc, sim):
        # Published on pve1's subject but naming pve2: someone made a mistake upstream.
        item = intent(node="pve2")
        await js.publish(subjects.intents_subject("pve1"), encode(item))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("rejected", "wrong-node")
    assert sim.pct_calls() == []


async def test_garbage_is_terminated_and_counted_and_the_next_intent_still_applies(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    bad_values = {"schema_version": 1, "vmid": "101; rm -rf /", "target": {"cores": 0, "memory_mb": 15}}
    async with running_actuator(nc, sim) as actuator:
        await publish_raw(js, b"\xc1 not msgpack")
        await publish_raw(js, msgpack.packb(bad_values))
        await publish_raw(js, msgpack.packb({"schema_version": 99}))
        await publish_intent(js, intent())
        [event] = await reader.take(1)
        assert actuator.handler.counts["undecodable"] == 3
    assert event.outcome == "applied"
    assert set_calls(sim) == [["set", "101", "-cores", "3", "-memory", "1024"]]


async def test_a_missing_container_fails_after_one_attempt(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(vmid=555))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "unknown-container", 1)
    assert "does not exist" in event.message


async def test_a_redelivered_intent_that_was_applied_is_not_applied_twice(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    item = intent()
    async with running_actuator(nc, sim):
        await publish_intent(js, item)
        [first] = await reader.take(1)
        # The same decision published again after the dedupe window would have passed:
        await js.publish(subjects.intents_subject("pve1"), encode(item))
        await eventually(lambda: queue_empty(js))
        # Its outcome was decided once: no second event, no second change.
        assert await reader.nothing_more(wait_s=0.5) == []
    assert (first.outcome, first.detail) == ("applied", "resized")
    assert len(set_calls(sim)) == 1


async def test_different_containers_are_resized_side_by_side(nc: Any, tmp_path: Path) -> None:
    vmids = range(101, 109)
    sim = sim_node(tmp_path / "node", *((v, 2, 1024) for v in vmids))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        for vmid in vmids:
            await publish_intent(js, intent(vmid))
        events = await reader.take(len(vmids))
    assert sorted(e.vmid for e in events if e.outcome == "applied") == list(vmids)


async def test_a_newer_intent_reports_the_change_an_earlier_crashed_intent_made(
    nc: Any, tmp_path: Path
) -> None:
    # The actuator died after changing 101 to 3 cores for `earlier`; `later` arrives first.
    sim = sim_node(tmp_path / "node", (101, 3, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    earlier = intent(expected=(2, 1024), target=(3, 1024), source_id="earlier")
    entry = JournalEntry(intent=earlier, before=earlier.expected, started_at=earlier.created_at)
    journal = await js.key_value(subjects.ACTUATOR_BUCKET)
    await journal.put(subjects.state_key("pve1", 101), entry.model_dump_json().encode())
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(expected=(3, 1024), target=(4, 1024), source_id="later"))
        events = await reader.take(2)
    assert [(e.intent_id == earlier.intent_id, e.outcome) for e in events] == [
        (True, "applied"),
        (False, "applied"),
    ]
    assert (events[0].before.cores, events[0].after.cores) == (2, 3)  # type: ignore[union-attr]
    assert sim.read_conf(101)["cores"] == "4"


async def test_a_group_intent_of_an_unknown_group_ends_in_one_rejected_event_and_the_queue_goes_on(
    nc: Any, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from shared.models import DecisionReason, GroupIntent

    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    group = GroupIntent.build(
        group="web", action="scale-out", node="pve1", vmid=101, source_id="pve1:boot-a:9",
        reason=DecisionReason(rule="group-scale-out", summary="group web cpu 91% > 80%"),
        created_at=datetime.now(UTC), ttl_s=120,
    )  # fmt: skip
    async with running_actuator(nc, sim):
        await js.publish(
            subjects.intents_subject("pve1"), encode(group), headers={"Nats-Msg-Id": group.intent_id}
        )
        await js.publish(subjects.intents_subject("pve1"), encode(group))  # a redelivered copy
        await publish_intent(js, intent(target=(3, 1024)))
        events = await reader.take(2)
        assert await reader.nothing_more() == []  # one event for the group intent, not two
        await eventually(lambda: queue_empty(js))
    rejected, applied = events
    assert (rejected.outcome, rejected.detail, rejected.intent_id) == (
        "rejected",
        "unknown-group",
        group.intent_id,
    )
    assert rejected.group is not None and (rejected.group.name, rejected.group.source_vmid) == ("web", 101)
    assert applied.outcome == "applied" and sim.read_conf(101)["cores"] == "3"
    assert [c for c in sim.pct_calls() if c[0] != "config"] == [
        ["set", "101", "-cores", "3", "-memory", "1024"]
    ]
