"""Issue 10, actuator side: no intent without an outcome, no intent with two, none fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actuator_harness import (
    EventReader,
    eventually,
    intent,
    publish_intent,
    queue_empty,
    running_actuator,
    set_calls,
    sim_node,
)

from shared import failpoints, subjects
from shared.codec import encode
from shared.models import DecisionReason


async def test_a_copy_of_an_applied_intent_after_a_later_change_gets_no_second_event(
    nc: Any, tmp_path: Path
) -> None:
    # As after a broker outage longer than ack_wait: `first` comes back after `second`
    # already followed its change. It must not be reported again (stale), nor changed.
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    first = intent(target=(3, 1024), source_id="first")
    second = intent(expected=(3, 1024), target=(4, 1024), source_id="second")
    async with running_actuator(nc, sim):
        await publish_intent(js, first)
        await reader.take(1)
        await publish_intent(js, second)
        await reader.take(1)
        await js.publish(subjects.intents_subject("pve1"), encode(first))  # a new stream copy
        await eventually(lambda: queue_empty(js))
        assert await reader.nothing_more(wait_s=0.5) == []
    assert len(set_calls(sim)) == 2 and sim.read_conf(101)["cores"] == "4"


async def test_an_intent_too_large_for_the_journal_ends_failed_and_the_next_one_applies(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024), (102, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    inputs: dict[str, Any] = {f"k{i}": "\x01" * 60_000 for i in range(10)}  # 6 bytes each as JSON
    huge = DecisionReason(rule="scale-up", summary="forged", inputs=inputs)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent().model_copy(update={"reason": huge}))
        [rejected] = await reader.take(1)
        await publish_intent(js, intent(102))
        [applied] = await reader.take(1)
        await eventually(lambda: queue_empty(js))
    assert (rejected.vmid, rejected.outcome, rejected.detail) == (101, "rejected", "too-large")
    assert rejected.reason is None and "left out" in rejected.message
    assert (applied.vmid, applied.outcome) == (102, "applied")
    assert set_calls(sim, 101) == []


async def test_a_forged_intent_below_the_tier_minimum_is_rejected(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim):
        await publish_intent(js, intent(target=(2, 16)))
        [event] = await reader.take(1)
    assert (event.outcome, event.detail) == ("rejected", "outside-tier")
    assert "at least 512 MB" in event.message and set_calls(sim) == []


async def test_an_unexpected_error_ends_one_intent_with_a_failed_event_and_the_service_goes_on(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024), (102, 2, 1024))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim) as actuator:
        with failpoints.armed("actuator.after-backup", "raise"):
            await publish_intent(js, intent(101))
            [failed] = await reader.take(1)
        await publish_intent(js, intent(102))
        [applied] = await reader.take(1)
        await eventually(lambda: queue_empty(js))
        assert actuator.handler.counts["internal-error"] == 1
    assert (failed.vmid, failed.outcome, failed.detail) == (101, "failed", "internal-error")
    assert "FailpointError" in failed.message
    assert (applied.vmid, applied.outcome) == (102, "applied")
    failpoints.hits.clear()


async def test_the_per_container_locks_are_dropped_once_idle(nc: Any, tmp_path: Path) -> None:
    vmids = range(101, 131)
    sim = sim_node(tmp_path / "node", *((v, 2, 1024) for v in vmids))
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim) as actuator:
        for vmid in vmids:
            await publish_intent(js, intent(vmid))
        await reader.take(len(vmids))
        await eventually(lambda: queue_empty(js))

        async def no_locks() -> bool:  # the last handler leaves its lock just after the ack
            return actuator.handler.locked_containers == 0

        await eventually(no_locks, timeout_s=5)
        assert actuator.handler.locked_containers == 0
