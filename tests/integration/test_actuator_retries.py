"""Faults injected into the simulated pct: what is retried, how often, and what is not."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import EventReader, intent, publish_intent, running_actuator, set_calls, sim_node
from support import metric

from shared import subjects
from simnode import faults

pytestmark = pytest.mark.integration


async def test_a_container_locked_twice_is_retried_and_applied_on_the_third_attempt(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, locked_times=2)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    retries, commands = metric("autoscale_actuator_retries_total", operation="set"), _commands()
    applied = _outcomes("applied")
    async with running_actuator(nc, sim, max_attempts=4):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.attempts) == ("applied", 3)
    # Counted as it happened: two retries, three timed `pct set` attempts, one applied intent.
    assert metric("autoscale_actuator_retries_total", operation="set") == retries + 2
    assert _commands() == commands + 3
    assert _outcomes("applied") == applied + 1
    assert len(set_calls(sim)) == 3
    assert sim.read_conf(101)["cores"] == "3"


async def test_a_container_locked_longer_than_the_retry_limit_fails_as_locked(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, locked_times=10)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    failed = _outcomes("failed", "locked")
    async with running_actuator(nc, sim, max_attempts=3):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "locked", 3)
    assert _outcomes("failed", "locked") == failed + 1
    assert "CT is locked (backup)" in event.message
    assert len(set_calls(sim)) == 3
    assert sim.read_conf(101)["cores"] == "2"


async def test_a_hung_pct_is_killed_at_the_timeout_and_the_retry_applies(nc: Any, tmp_path: Path) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, hang_seconds=30, hang_times=1)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    started = time.monotonic()
    async with running_actuator(nc, sim, command_timeout_s=0.8, max_attempts=3):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.attempts) == ("applied", 2)
    assert time.monotonic() - started < 10  # the 30 s hang was cut short
    assert sim.read_conf(101)["cores"] == "3"


async def test_a_pct_that_always_hangs_fails_with_timeout_after_the_attempt_limit(
    nc: Any, tmp_path: Path
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, hang_seconds=30, hang_times=10)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, command_timeout_s=0.5, max_attempts=2):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", "timeout", 2)
    assert sim.read_conf(101)["cores"] == "2"


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (
            "400 Parameter verification failed.\ncores: value must have a maximum value of 8192",
            "invalid-value",
        ),
        ("unexpected storage error\x1b[31m", "command-failed"),
    ],
    ids=["invalid value", "unknown error"],
)
async def test_a_permanent_error_fails_after_one_attempt_with_the_sanitized_message(
    nc: Any, tmp_path: Path, message: str, detail: str
) -> None:
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, fail_message=message, fail_times=5)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, max_attempts=4):
        await publish_intent(js, intent())
        [event] = await reader.take(1)
    assert (event.outcome, event.detail, event.attempts) == ("failed", detail, 1)
    assert "\x1b" not in event.message and "\n" not in event.message
    assert len(set_calls(sim)) == 1


async def test_long_retries_keep_the_intent_from_being_redelivered(nc: Any, tmp_path: Path) -> None:
    # Five timeouts of 0.6 s outlast ack_wait (3 s); only the progress reports keep it ours.
    sim = sim_node(tmp_path / "node", (101, 2, 1024))
    faults.inject(sim.root, 101, hang_seconds=30, hang_times=5)
    js = nc.jetstream()
    reader = await EventReader.open(js)
    async with running_actuator(nc, sim, command_timeout_s=0.6, max_attempts=6) as actuator:
        assert actuator.timing.ack_wait_s == 3
        await publish_intent(js, intent())
        [event] = await reader.take(1)
        info = await js.consumer_info(subjects.INTENTS_STREAM, subjects.actuator_consumer("pve1"))
    assert (event.outcome, event.attempts) == ("applied", 6)
    assert info.num_redelivered == 0
    assert await reader.nothing_more() == []


def _commands() -> float:
    return metric("autoscale_actuator_command_duration_seconds_count", operation="set")


def _outcomes(outcome: str, detail: str | None = None) -> float:
    """Intents ended with this outcome (and detail, or any)."""
    from prometheus_client import REGISTRY

    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "autoscale_actuator_intents"
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels.get("node") == "pve1"
        and sample.labels.get("outcome") == outcome
        and detail in {None, sample.labels.get("detail")}
    )
