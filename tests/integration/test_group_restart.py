"""A horizontal group through every real service, each signed in as its own user of the
shipped NATS permissions, on a simulated node under load (issue 12, "Done when"):

- it scales out to `max_instances` one clone at a time, the grace period between two
  actions, and back to `min_instances` when the load ends, newest clone first;
- every service (collector, both decider replicas, the actuator) and the nats-server
  with its JetStream file store are SIGKILLed in the middle of the first scale-out (the
  actuator held just after `pct clone`) and started again: the clone is kept as a
  member (its tag and the members record), the intent makes no second clone and
  completes once, with one event.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from group_harness import pct_calls, view

from cli.demo import demo_config
from cli.processes import ProcessGroup
from shared import failpoints, subjects
from shared.codec import CodecError, decode, decode_intent
from shared.config import load_config
from shared.groups import MembershipRecord
from shared.models import GroupIntent, ScaleEvent
from shared.nats_settings import open_connection
from simnode.scenario import parse_scenario
from simnode.tree import SimNode
from tests.secure_broker import ShippedBroker, provision_as_setup

NODE, SOURCE, GROUP = "pve1", 301, "app"
TAG = f"autoscale-group-{GROUP}"
MAX, MIN = 4, 1
HOT, COOL = 5.5, 0.3  # the group's total CPU demand, in cores
# Short periods keep the test short, yet longer than a clone takes to boot and pass the
# readiness gate, so that they hold actions back (the deciders' notes say so).
GRACE_OUT_S, GRACE_IN_S = 12, 4
INTERVAL_S = 1.0

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes(NODE)]


def scenario(cpu_cores: float) -> dict[str, Any]:
    """One node whose group `app` (source 301, 2 cores) carries `cpu_cores` in total,
    spread over its running, booted members: 5.5 keeps three members above 80 % (92 %) and
    four below it (69 %), so the group grows to 4 and stays there; 0.3 is the load gone."""
    return {
        "node": NODE, "host_cores": 16, "host_memory_mb": 32768,
        "settings": {"boot_s": 1, "clone_s": 1},
        "containers": [{"vmid": SOURCE, "hostname": "app1", "cores": 2, "memory_mb": 1024, "tags": "app",
                        "group_member": True}],
        "groups": [{"name": GROUP, "tag": "app",
                    "profile": [{"duration_s": 3600, "cpu": cpu_cores, "memory_mb": 300, "cache_mb": 60}]}],
    }  # fmt: skip


def config(plan: dict[str, Any], sim: SimNode) -> dict[str, Any]:
    """The demo's configuration, with the group's periods and the services' timings short."""
    settings = demo_config(plan, sim.root, sim.pct_path)
    settings[f"HORIZONTAL_SCALING_GROUP_{GROUP}"].update(
        min_instances=MIN, max_instances=MAX, scale_out_grace_period=GRACE_OUT_S,
        scale_in_grace_period=GRACE_IN_S, ready_after_s=2 * INTERVAL_S, action_timeout_s=120,
    )  # fmt: skip
    settings["COLLECTOR"]["interval_s"] = INTERVAL_S
    settings["DECIDER"].update(intent_ttl_s=120, min_stale_s=10)
    # ack_wait (and so the node lease a killed actuator leaves behind) follows the
    # command timeout: a few seconds, not the default's 40 s.
    settings["ACTUATOR"].update(command_timeout_s=4, backoff_max_s=0.5, backoff_initial_s=0.1)
    return settings


@dataclass
class Stack:
    """The node, the shipped broker and the services, started and killed as processes."""

    tmp: Path
    broker: ShippedBroker
    sim: SimNode
    config: Path
    js: Any
    intents: dict[str, GroupIntent] = field(default_factory=dict)  # every group intent seen, by id
    groups: list[ProcessGroup] = field(default_factory=list)  # the last one runs, the others were killed
    workload: ProcessGroup | None = None

    def _group(self, **env: str) -> ProcessGroup:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "AUTOSCALE_"))}
        made = ProcessGroup(log_dir=self.tmp / "logs", env=clean | env)
        self.groups.append(made)
        return made

    def start_services(self, **env: str) -> None:
        """The actuator (with `env`, e.g. a failpoint), two decider replicas, the collector."""
        services = self._group(**env)

        def args(name: str, user: str, node: str | None = None) -> list[str]:
            url = self.broker.url_for(user, node)
            return ["cli.main", name, "--config", str(self.config), "--nats-url", url, "--log-format", "json"]

        services.start("actuator", args("actuator", "actuator", NODE))
        for replica in (1, 2):
            services.start(f"decider-{replica}", [*args("decider", "decider"), "--replica-id", f"r{replica}"])
        services.start("collector", args("collector", "collector", NODE))

    def load(self, cpu_cores: float) -> None:
        """(Re)start the simulator's workload with the group carrying `cpu_cores`."""
        if self.workload is not None:
            self.workload.stop_all()
        path = self.tmp / f"load-{cpu_cores}.json"
        path.write_text(json.dumps(scenario(cpu_cores)))
        self.workload = ProcessGroup(log_dir=self.tmp / "logs")
        driver = ["simnode.workload", "--root", str(self.sim.root), "--profile", str(path), "--tick", "0.25"]
        self.workload.start("workload", driver)

    def kill_everything(self) -> None:
        """SIGKILL every service and the nats-server at once: a power cut, nothing flushed."""
        for group in self.groups:
            for member in group.members:
                member.process.kill()
        self.broker.kill()
        for group in self.groups:
            for member in group.members:
                member.process.wait(10)
        self.groups.append(ProcessGroup(log_dir=self.tmp / "logs"))  # nothing runs now

    def dead_services(self) -> dict[str, str]:
        running = self.groups[-1].members if self.groups else []
        return {m.name: self.groups[-1].tail(m, 30) for m in running if m.process.poll() is not None}

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted((self.tmp / "logs").glob("*.log"))
        )

    def stop_all(self) -> None:
        for group in [*self.groups, *([self.workload] if self.workload else [])]:
            group.stop_all()

    async def events(self) -> list[ScaleEvent]:
        """Every event in the events stream, in order (read by sequence: nothing consumed)."""
        info = await self.js.stream_info(subjects.EVENTS_STREAM)
        found = []
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            found.append(decode((await self.js.get_msg(subjects.EVENTS_STREAM, seq)).data, ScaleEvent))
        return found

    async def members(self) -> MembershipRecord | None:
        kv = await self.js.key_value(subjects.GROUPS_BUCKET)
        try:
            entry = await kv.get(subjects.group_members_key(GROUP))
        except Exception:
            return None
        return MembershipRecord.from_bytes(entry.value)

    def clones(self) -> list[int]:
        return [vmid for vmid in self.sim.vmids() if vmid != SOURCE]

    def running(self) -> list[int]:
        return [vmid for vmid in self.sim.vmids() if self.sim.is_running(vmid)]

    async def until(self, check: Callable[[], Awaitable[Any]], what: str, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            value = await check()
            if value:
                return value
            dead = self.dead_services()
            assert not dead, f"services died while waiting for {what}: {dead}"
            if time.monotonic() > deadline:
                events = await self.events()
                raise AssertionError(
                    f"not within {timeout_s} s: {what}; events {events}; logs:\n{self.logs()}"
                )
            await asyncio.sleep(0.25)


@pytest.fixture
async def stack(shipped_broker: ShippedBroker, tmp_path: Path) -> AsyncIterator[Stack]:
    sim = parse_scenario(scenario(HOT)).build(tmp_path / "node")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config(scenario(HOT), sim)))
    # What `lxc-autoscale setup` does for this configuration (the actuator consumer's timing).
    await provision_as_setup([shipped_broker.url], [NODE], config=load_config(config_path, env={}))
    # The test's own eyes: the setup user (it may read everything), reconnecting for ever
    # so that it outlives the server's restart.
    client = await open_connection(shipped_broker.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    made = Stack(tmp_path, shipped_broker, sim, config_path, client.jetstream())

    async def on_intent(msg: Any) -> None:
        with contextlib.suppress(CodecError):
            intent = decode_intent(msg.data)
            if isinstance(intent, GroupIntent):
                made.intents.setdefault(intent.intent_id, intent)  # replicas may send one decision twice

    await client.subscribe(subjects.INTENTS_ALL, cb=on_intent)
    try:
        yield made
    finally:
        made.stop_all()
        await client.close()


async def test_a_group_survives_a_restart_of_everything_mid_scale_out_then_grows_to_max_and_back_to_min(
    stack: Stack,
) -> None:
    sim = stack.sim
    # Under load, the actuator is held just after `pct clone` of the first scale-out.
    stack.load(HOT)
    stack.start_services(**{failpoints.ENVIRONMENT_VARIABLE: "group.after-clone=pause"})

    async def cloned_not_finished() -> int | None:
        made = stack.clones()
        seen = view(sim, made[0]) if len(made) == 1 else None
        return made[0] if seen is not None and seen.lock is None else None

    first = await stack.until(cloned_not_finished, "the first clone copied", timeout_s=90)
    await asyncio.sleep(1.0)  # the actuator reaches its failpoint and holds there
    seen = view(sim, first)
    assert seen is not None and TAG not in seen.tags and not sim.is_running(first)  # mid scale-out
    assert await stack.events() == []
    [out_1] = stack.intents.values()

    stack.kill_everything()
    stack.broker.start()  # the same port and the same JetStream store
    await stack.until(_connected(stack), "the test's client reconnected", timeout_s=30)
    stack.start_services()

    # The interrupted scale-out completes once, with the clone it had made.
    async def applied(count: int) -> list[ScaleEvent] | None:
        done = [e for e in await stack.events() if e.outcome == "applied"]
        return done if len(done) >= count else None

    [event_1] = await stack.until(lambda: applied(1), "the interrupted scale-out's event", timeout_s=90)
    assert (event_1.intent_id, event_1.detail, event_1.vmid) == (out_1.intent_id, "scaled-out", first)
    seen = view(sim, first)
    assert seen is not None and TAG in seen.tags and sim.is_running(first)
    record = await stack.members()
    assert record is not None
    assert [(m.vmid, m.node, m.created) for m in record.members] == [(first, NODE, True)]
    assert len(pct_calls(sim, "clone")) == 1

    # Still hot: more clones, one at a time, the grace period between, up to max_instances.
    await stack.until(lambda: applied(MAX - 1), "scale-outs up to max_instances", timeout_s=90)
    await stack.until(_running_members(stack, MAX), f"{MAX} members running", timeout_s=30)

    # The load ends: back to min_instances, newest clone first.
    stack.load(COOL)
    await stack.until(lambda: applied(2 * (MAX - MIN)), "scale-ins down to min_instances", timeout_s=120)
    await asyncio.sleep(2 * INTERVAL_S)  # nothing more comes
    events = await stack.events()
    assert not stack.dead_services()

    outs = [e.vmid for e in events if e.group and e.group.action == "scale-out"]
    ins = [e.vmid for e in events if e.group and e.group.action == "scale-in"]
    assert [e.outcome for e in events] == ["applied"] * len(events)
    assert len(outs) == MAX - MIN and outs[0] == first and sorted(outs) == stack.clones()
    assert [e.group.action for e in events if e.group] == ["scale-out"] * len(outs) + ["scale-in"] * len(ins)
    assert ins == list(reversed(outs))  # the newest clone goes first; the source never
    assert len({e.intent_id for e in events}) == len(events)  # one event per intent
    assert len(pct_calls(sim, "clone")) == len(outs)  # the interrupted scale-out cloned once
    assert stack.running() == [SOURCE]
    for vmid in outs:  # stopped, not destroyed: still tagged, their ids kept
        seen = view(sim, vmid)
        assert seen is not None and TAG in seen.tags
    record = await stack.members()
    assert record is not None and record.members == ()

    # One decision per action, each its grace period after the previous one; a clone is
    # asked for only once the one before it is made and started.
    intents = sorted(stack.intents.values(), key=lambda i: i.created_at)
    assert [i.intent_id for i in intents] == [e.intent_id for e in events]
    for before, after, previous_event in zip(intents, intents[1:], events, strict=False):
        grace = GRACE_OUT_S if after.action == "scale-out" else GRACE_IN_S
        assert (after.created_at - before.created_at).total_seconds() >= grace
        if after.action == "scale-out":
            assert after.created_at > previous_event.occurred_at
    logs = stack.logs()
    for action in ("scale-out", "scale-in"):  # the periods did hold an action back
        assert f"{action} wanted but the grace period holds" in logs
    assert "permissions violation" not in logs.lower() and "authorization violation" not in logs.lower()


def _connected(stack: Stack) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            await stack.js.account_info()
        except Exception:
            return False
        return True

    return check


def _running_members(stack: Stack, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(stack.running()) == count

    return check
