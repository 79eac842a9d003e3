"""Two actuator processes for one node, signed in as that node's actuator user of the
shipped NATS configuration: one holds the node's lease and applies intents, the other
stands by. The simulated pct's call log is the witness that no change is made twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from actuator_harness import (
    PROCESS_CONFIG,
    EventReader,
    actuator_process,
    eventually,
    intent,
    publish_intent,
    queue_empty,
    set_calls,
    setup_node,
    sim_node,
)
from nats.js.errors import NotFoundError

from services.actuator.leadership import lease_key
from services.actuator.records import LeaseRecord
from shared import failpoints, subjects
from shared.config import load_config
from shared.nats_settings import open_connection
from simnode import faults
from simnode.tree import SimNode
from tests.secure_broker import ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes("pve1")]
# Retries of a locked container that last longer than the lease (9 s) and ack_wait (6 s).
SLOW_CONFIG = """\
ACTUATOR:
  command_timeout_s: 1
  max_attempts: 8
  backoff_initial_s: 0.5
  backoff_max_s: 2
"""
VMIDS = list(range(101, 109))
ACTUATOR_STEPS = sorted(
    name.removeprefix("actuator.after-") for name in failpoints.POINTS if name.startswith("actuator.")
)


class Pair:
    """The setup user's view of the broker, and the node's actuator processes."""

    def __init__(self, broker: ShippedBroker, tmp_path: Path, config: str) -> None:
        self.broker = broker
        self.sim = sim_node(tmp_path / "node", *((vmid, 2, 1024) for vmid in VMIDS))
        self.config = tmp_path / "autoscale.yaml"
        self.config.write_text(config)
        self.logs = tmp_path
        self.processes: list[Any] = []
        self.client: Any = None

    @property
    def js(self) -> Any:
        return self.client.jetstream()

    def start(self, name: str, crash_after: str | None = None, action: str = "kill") -> Any:
        process = actuator_process(
            self.broker, self.sim, self.config, crash_after,  # type: ignore[arg-type]
            url=self.broker.url_for("actuator", "pve1"), log=self.log(name), action=action,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def lease_taken(self, name: str) -> int:
        return self.logged(name, "lease_taken")

    def logged(self, name: str, event: str) -> int:
        """How many of the process's log lines have this `event`."""
        lines = self.log(name).read_text().splitlines() if self.log(name).exists() else []
        return sum(1 for line in lines if json.loads(line).get("event") == event)

    async def leader_pid(self) -> int | None:
        kv = await self.js.key_value(subjects.ACTUATOR_BUCKET)
        try:
            entry = await kv.get(lease_key("pve1"))
        except NotFoundError:
            return None
        return int(LeaseRecord.model_validate_json(entry.value).holder.split(":")[1])

    async def wait_for_leader(self, process: Any) -> None:
        await eventually(lambda: self._leads(process), timeout_s=30)

    async def _leads(self, process: Any) -> bool:
        return await self.leader_pid() == process.pid

    async def events(self, count: int) -> list[Any]:
        reader = await EventReader.open(self.js)  # opened once the work is done: never reaped idle
        return await reader.take(count, timeout_s=20) + await reader.nothing_more(wait_s=1.0)


@pytest.fixture
async def pair(shipped_broker: ShippedBroker, tmp_path: Path) -> AsyncIterator[Pair]:
    async with _pair(shipped_broker, tmp_path, PROCESS_CONFIG) as made:
        yield made


@pytest.fixture
async def slow_pair(shipped_broker: ShippedBroker, tmp_path: Path) -> AsyncIterator[Pair]:
    async with _pair(shipped_broker, tmp_path, SLOW_CONFIG) as made:
        yield made


@contextlib.asynccontextmanager
async def _pair(broker: ShippedBroker, tmp_path: Path, config: str) -> AsyncIterator[Pair]:
    made = Pair(broker, tmp_path, config)
    made.client = await open_connection(broker.url_for("setup"))
    try:
        await setup_node(made.js, load_config(made.config, env={}).actuator)  # as `lxc-autoscale setup` does
        yield made
    finally:
        await made.client.close()
        for process in made.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
                process.terminate()
                await asyncio.to_thread(process.wait, 10)


def targets_applied_once(sim: SimNode) -> bool:
    return all(
        [call[2:] for call in set_calls(sim, vmid)].count(["-cores", "3", "-memory", "1024"]) == 1
        for vmid in VMIDS
    )


async def test_two_actuators_for_one_node_apply_a_burst_once_each(pair: Pair) -> None:
    first, second = pair.start("first"), pair.start("second")
    intents = [intent(vmid) for vmid in VMIDS]
    for item in intents:
        await publish_intent(pair.js, item)
    await eventually(lambda: queue_empty(pair.js), timeout_s=30)
    events = await pair.events(len(intents))
    leader = await pair.leader_pid()
    assert sorted(e.intent_id for e in events) == sorted(i.intent_id for i in intents)
    assert {(e.outcome, e.detail) for e in events} == {("applied", "resized")}
    assert targets_applied_once(pair.sim) and len(pair.sim.pct_calls()) == len(VMIDS)
    assert leader in (first.pid, second.pid)
    assert pair.lease_taken("first") + pair.lease_taken("second") == 1  # nobody stepped in


@pytest.mark.parametrize("step", ACTUATOR_STEPS)
async def test_the_leader_killed_at_any_step_the_standby_finishes_every_intent_exactly_once(
    pair: Pair, step: str
) -> None:
    """The leader is SIGKILLed at `step` of its first intent, with the rest of a burst
    fetched or queued; the standby takes the lease over once it has run out and finishes
    every intent from the journal."""
    doomed = pair.start("doomed", crash_after=step)
    intents = [intent(vmid) for vmid in VMIDS]
    await pair.wait_for_leader(doomed)
    standby = pair.start("standby")
    await asyncio.sleep(1.0)  # the standby is up and watching the lease
    for item in intents:
        await publish_intent(pair.js, item)
    assert await asyncio.to_thread(doomed.wait, 30) == -9
    await pair.wait_for_leader(standby)
    await eventually(lambda: queue_empty(pair.js), timeout_s=40)
    events = await pair.events(len(intents))
    assert sorted(e.intent_id for e in events) == sorted(i.intent_id for i in intents), events
    assert {(e.outcome, e.detail) for e in events} == {("applied", "resized")}
    assert targets_applied_once(pair.sim), pair.sim.pct_calls()
    assert standby.poll() is None


async def test_a_slow_leader_keeps_its_lease_and_the_standby_does_not_step_in(slow_pair: Pair) -> None:
    """pct set meets a locked container seven times: retries outlast the lease's ttl and
    ack_wait, yet the leader renews its lease and reports progress, so the standby never
    takes over and the intent is not redelivered."""
    pair = slow_pair
    faults.inject(pair.sim.root, 101, locked_times=7)
    leader = pair.start("leader")
    await pair.wait_for_leader(leader)
    pair.start("standby")
    await publish_intent(pair.js, intent(101))
    await eventually(lambda: queue_empty(pair.js), timeout_s=60)
    [event] = await pair.events(1)
    still = await pair.leader_pid()
    assert (event.outcome, event.detail, event.attempts) == ("applied", "resized", 8)
    assert event.duration_ms > 9_000  # longer than the lease lives unrenewed
    assert len(set_calls(pair.sim, 101)) == 8  # seven refused as locked, one made
    assert still == leader.pid
    assert pair.lease_taken("standby") == 0


def stopped(process: Any) -> bool:
    """SIGSTOPped: state `T` in /proc/<pid>/stat."""
    stat = Path(f"/proc/{process.pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


async def test_a_leader_frozen_before_its_pct_never_runs_it_once_the_standby_took_over(pair: Pair) -> None:
    """The whole leader process is stopped between its journal write and pct set, longer
    than its lease lives: the standby takes over, gets the intent again and applies it.
    Woken, the old leader finds its lease gone and hands the intent back instead of
    running pct a second time."""
    frozen = pair.start("frozen", crash_after="journal", action="stop")
    await pair.wait_for_leader(frozen)
    standby = pair.start("standby")
    await asyncio.sleep(1.0)  # the standby is up and watching the lease
    item = intent(101)
    await publish_intent(pair.js, item)
    await eventually(lambda: asyncio.to_thread(stopped, frozen), timeout_s=20)
    await pair.wait_for_leader(standby)
    await eventually(lambda: queue_empty(pair.js), timeout_s=30)
    [event] = await pair.events(1)
    assert (event.intent_id, event.outcome) == (item.intent_id, "applied")

    frozen.send_signal(signal.SIGCONT)
    await eventually(lambda: asyncio.to_thread(pair.logged, "frozen", "intent_retry_later"), timeout_s=20)
    assert len(set_calls(pair.sim, 101)) == 1
    assert [e.event_id for e in await pair.events(1)] == [event.event_id]  # and no second event
    assert await pair.leader_pid() == standby.pid and frozen.poll() is None
