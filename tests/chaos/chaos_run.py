"""The chaos run: the whole system on a three-server NATS cluster while its parts die.

Three nats-server processes (the shipped configuration, 3 replicas), three simulated
Proxmox nodes whose load swings up and down, each with its workload driver, collector
and actuator, and three decider replicas, every service a separate process given every
server's URL. While it runs, one part at a time is SIGKILLed and started again: a NATS
server (every other time the leader of a stream), a decider, an actuator or a collector.
Then the load stops, the system drains, and every intent is accounted for:

- each intent published has exactly one event, and no event is for an unknown intent
  (one published while its stream had no leader is sent again and must be answered too);
- each container was changed by `pct set` exactly as often as it has applied events
  (the simulator's pct log is the witness), and its config is what its last applied
  event says;
- no sample is left unprocessed on the deciders' consumer (stale ones are acknowledged
  without a decision, as designed, and counted), no intent left queued;
- no service exited that was not killed.

Intents are seen by a core subscription on each server (one of them may be down at a
time, the other two see what it misses). The figures are printed as one JSON line, the
last line:

    python -m tests.chaos.chaos_run --duration 60 [--seed N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cli.demo import demo_config
from cli.processes import ProcessGroup, ServiceProcess
from shared import subjects
from shared.codec import CodecError, decode
from shared.config import load_config
from shared.models import ScaleEvent, ScaleIntent
from shared.nats_settings import open_connection
from simnode.scenario import build_scenario
from simnode.tree import SimNode
from tests.cluster_harness import service_env, stream_leader
from tests.secure_broker import ShippedBroker, ShippedCluster

NODES = ("pve1", "pve2", "pve3")
DECIDERS = 3
KINDS = ("nats", "decider", "actuator", "collector")
STREAMS = (subjects.METRICS_STREAM, subjects.INTENTS_STREAM, subjects.EVENTS_STREAM,
           f"KV_{subjects.ACTUATOR_BUCKET}", f"KV_{subjects.STATE_BUCKET}")  # fmt: skip
FAST_ACTUATOR = {"command_timeout_s": 2, "max_attempts": 3, "backoff_initial_s": 0.05, "backoff_max_s": 0.2}


def swinging(seconds: float, offset: float) -> list[dict[str, float]]:
    """A container's load that rises above the upper thresholds and falls below the lower."""
    high = {"duration_s": seconds, "cpu": 3.4, "memory_mb": 900, "cache_mb": 50}
    low = {"duration_s": seconds, "cpu": 0.05, "memory_mb": 120, "cache_mb": 20}
    return [{**low, "duration_s": offset}, high, low] if offset else [high, low]


def chaos_scenario(node: str) -> dict[str, Any]:
    containers = [
        {"vmid": 101, "hostname": "web1", "cores": 2, "memory_mb": 1024, "loop": True,
         "profile": swinging(14, 0)},
        {"vmid": 102, "hostname": "web2", "cores": 2, "memory_mb": 1024, "loop": True,
         "profile": swinging(14, 7)},
        {"vmid": 201, "hostname": "db1", "cores": 2, "memory_mb": 2048, "loop": True,
         "profile": swinging(20, 3)},
    ]  # fmt: skip
    return {"node": node, "host_cores": 16, "host_memory_mb": 32768, "containers": containers}


@dataclass
class Figures:
    intents: int = 0
    events: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    leader_kills: int = 0
    broker_recovery_s: list[float] = field(default_factory=list)
    changes: int = 0
    duration_s: float = 0.0
    problems: list[str] = field(default_factory=list)
    unstored: int = 0
    unanswered: list[str] = field(default_factory=list)
    stale_samples: int = 0  # acknowledged without a decision: too old (the design drops them)

    def line(self) -> str:
        return json.dumps({
            "ok": not self.problems,
            "intents": self.intents,
            "intents_seen_not_stored": self.unstored,
            "unanswered": self.unanswered[:10],
            "events": self.events,
            "outcomes": dict(self.outcomes),
            "pct_set_changes": self.changes,
            "samples_stale_dropped": self.stale_samples,
            "kills": {kind: self.kills[kind] for kind in KINDS},
            "nats_leader_kills": self.leader_kills,
            "max_broker_recovery_s": round(max(self.broker_recovery_s, default=0.0), 2),
            "duration_s": round(self.duration_s, 1),
            "problems": self.problems[:20],
        }, sort_keys=True)  # fmt: skip


class Witness:
    """A core subscription to every intent on each server of the cluster."""

    def __init__(self) -> None:
        self.intents: dict[str, ScaleIntent] = {}
        self.clients: list[Any] = []
        self.last_seen = time.monotonic()

    async def open(self, cluster: ShippedCluster) -> None:
        for url in cluster.urls_for("setup"):
            client = await open_connection(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2,
                                        error_cb=_quiet)  # fmt: skip
            await client.subscribe(subjects.INTENTS_ALL, cb=self._seen)
            self.clients.append(client)

    async def _seen(self, msg: Any) -> None:
        with contextlib.suppress(CodecError):
            item = decode(msg.data, ScaleIntent)
            self.intents[item.intent_id] = item
            self.last_seen = time.monotonic()

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


@dataclass
class Node:
    name: str
    sim: SimNode
    config: Path
    scenario: Path


class ChaosRun:
    def __init__(self, workdir: Path, seed: int) -> None:
        self.workdir = workdir
        self.random = random.Random(seed)
        self.figures = Figures()
        self.group = ProcessGroup(log_dir=workdir / "logs", env=service_env())
        self.services: dict[str, ServiceProcess] = {}
        self.commands: dict[str, list[str]] = {}
        self.killed: set[int] = set()  # pids we killed or stopped
        self.cluster: ShippedCluster | None = None
        self.nodes: list[Node] = []

    # -------------------------------------------------------------- set up

    def build_nodes(self) -> None:
        for name in NODES:
            scenario = self.workdir / f"{name}.json"
            scenario.write_text(json.dumps(chaos_scenario(name)))
            sim, _profiles = build_scenario(self.workdir / name, scenario)
            settings = demo_config(chaos_scenario(name), sim.root, sim.pct_path)
            settings["ACTUATOR"].update(FAST_ACTUATOR)
            config = self.workdir / f"{name}.yaml"
            config.write_text(yaml.safe_dump(settings))
            self.nodes.append(Node(name, sim, config, scenario))

    def start(self, name: str) -> None:
        self.services[name] = self.group.start(name, self.commands[name])

    def start_services(self, cluster: ShippedCluster) -> None:
        for node in self.nodes:
            common = ["--config", str(node.config), "--log-format", "json"]
            self.commands[f"workload-{node.name}"] = [
                "simnode.workload", "--root", str(node.sim.root), "--profile", str(node.scenario),
            ]  # fmt: skip
            self.commands[f"actuator-{node.name}"] = [
                "cli.main", "actuator", *common, "--nats-url", cluster.url_for("actuator", node.name),
            ]  # fmt: skip
            self.commands[f"collector-{node.name}"] = [
                "cli.main", "collector", *common, "--nats-url", cluster.url_for("collector", node.name),
            ]  # fmt: skip
        for replica in range(1, DECIDERS + 1):
            self.commands[f"decider-{replica}"] = [
                "cli.main", "decider", "--config", str(self.nodes[0].config), "--log-format", "json",
                "--nats-url", cluster.url_for("decider"), "--replica-id", f"chaos-{replica}",
            ]  # fmt: skip
        for name in self.commands:
            self.start(name)

    # -------------------------------------------------------------- chaos

    async def kill_service(self, kind: str) -> None:
        name = self.random.choice([n for n in self.services if n.startswith(f"{kind}-")])
        member = self.services[name]
        self.killed.add(member.process.pid)
        member.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(member.process.wait)
        self.figures.kills[kind] += 1
        await asyncio.sleep(self.random.uniform(0.5, 2.0))
        self.start(name)

    async def kill_nats(self, admin: Any) -> None:
        assert self.cluster is not None
        js = admin.jetstream(timeout=2)
        victim: ShippedBroker
        if self.figures.kills["nats"] % 2 == 0:  # every other time: a stream's leader
            stream = self.random.choice(STREAMS[:3])
            leader = await stream_leader(js, stream)
            victim = self.cluster.server(leader)
            self.figures.leader_kills += 1
        else:
            victim = self.random.choice(self.cluster.servers)
        killed_at = time.monotonic()
        victim.kill()
        self.figures.kills["nats"] += 1
        await self.until_streams_answer(js)
        self.figures.broker_recovery_s.append(time.monotonic() - killed_at)
        await asyncio.sleep(self.random.uniform(0.5, 2.0))
        await asyncio.to_thread(victim.start)
        await self.until_replicas_current(js)  # never two servers down: quorum holds

    async def until_streams_answer(self, js: Any, timeout_s: float = 60.0) -> None:
        """Every stream and bucket has a leader that answers again."""
        deadline = time.monotonic() + timeout_s
        for stream in STREAMS:
            while True:
                try:
                    await stream_leader(js, stream)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

    async def until_replicas_current(self, js: Any, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for stream in STREAMS:
            while True:
                with contextlib.suppress(Exception):
                    info = await js.stream_info(stream)
                    peers = info.cluster.replicas or [] if info.cluster else []
                    if len(peers) == 2 and all(p.current and not p.offline for p in peers):
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stream}: the restarted server did not catch up")
                await asyncio.sleep(0.2)

    async def chaos(self, admin: Any, duration_s: float) -> None:
        deadline = time.monotonic() + duration_s
        plan: list[str] = []
        while time.monotonic() < deadline:
            if not plan:
                plan = list(KINDS)
                self.random.shuffle(plan)
            kind = plan.pop()
            if kind == "nats":
                await self.kill_nats(admin)
            else:
                await self.kill_service(kind)
            self.check_alive()
            await asyncio.sleep(self.random.uniform(1.0, 3.0))

    def check_alive(self) -> None:
        for name, member in self.services.items():
            code = member.process.poll()
            if code is not None and member.process.pid not in self.killed:
                self.figures.problems.append(f"{name} exited on its own with {code}")
                self.killed.add(member.process.pid)
                self.start(name)

    # -------------------------------------------------------------- account

    async def drain(self, admin: Any, witness: Witness, timeout_s: float = 90.0) -> None:
        """Stop the load and the collectors; wait until every sample and intent is handled."""
        for name, member in self.services.items():
            if name.startswith(("workload-", "collector-")):
                self.killed.add(member.process.pid)
                member.process.send_signal(signal.SIGTERM)
        js = admin.jetstream(timeout=5)
        deadline = time.monotonic() + timeout_s
        state = "not asked yet"
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            try:
                samples = await js.consumer_info(subjects.METRICS_STREAM, subjects.DECIDER_CONSUMER)
                intents = (await js.stream_info(subjects.INTENTS_STREAM)).state
                answered = {e.intent_id for e in await read_events(js)}
            except Exception as exc:
                state = f"cannot ask: {exc!r}"
                continue
            unprocessed = samples.num_pending + samples.num_ack_pending
            idle = time.monotonic() - witness.last_seen > 3.0
            state = (f"samples unprocessed {unprocessed}, intents queued {intents.messages}, "
                     f"stored {intents.last_seq}, answered {len(answered)}")  # fmt: skip
            if unprocessed == 0 and intents.messages == 0 and idle and len(answered) >= intents.last_seq:
                return
        self.figures.problems.append(f"the system did not drain within {timeout_s:g} s: {state}")
        self.figures.problems += [f"still running but silent: {n}" for n in self.silent_services()]

    def silent_services(self) -> list[str]:
        """Services whose last start never got to `ready` (a start-up that hangs)."""
        silent = []
        for name, member in self.services.items():
            if member.process.poll() is None and name.startswith(("decider-", "actuator-")):
                lines = member.log_path.read_text(errors="replace").splitlines()
                if not any('"ready"' in line or '"actuator_ready"' in line for line in lines[-200:]):
                    silent.append(name)
        return silent

    async def account(self, admin: Any, witness: Witness) -> None:
        js = admin.jetstream(timeout=5)
        events = await read_events(js)
        self.figures.events = len(events)
        self.figures.outcomes = Counter(e.outcome for e in events)
        per_intent: dict[str, list[ScaleEvent]] = defaultdict(list)
        for event in events:
            per_intent[event.intent_id].append(event)
        problems = self.figures.problems
        # Every intent the stream stored has exactly one event. The witness also sees
        # publishes that were not stored (the stream had no leader): the decider sends
        # those again from its state, so each of them must end up answered too.
        stored = (await js.stream_info(subjects.INTENTS_STREAM)).state.last_seq
        self.figures.intents = stored
        self.figures.unstored = len(set(witness.intents) - set(per_intent))
        if len(per_intent) != stored:
            problems.append(f"{stored} intents stored, {len(per_intent)} have events")
        problems += [
            f"intent {i} has {len(found)} events: {[e.outcome for e in found]}"
            for i, found in per_intent.items() if len(found) != 1
        ]  # fmt: skip
        for intent_id in set(witness.intents) - set(per_intent):
            item = witness.intents[intent_id]
            when = f"{item.created_at:%H:%M:%S}"
            self.figures.unanswered.append(f"{item.node}/{item.vmid} {intent_id} at {when}")
        if self.figures.unanswered:
            problems.append(f"{len(self.figures.unanswered)} intents published but never stored and answered")
        for node in self.nodes:
            for vmid in node.sim.vmids():
                applied = sorted(
                    (e for e in events if e.node == node.name and e.vmid == vmid and e.outcome == "applied"),
                    key=lambda e: e.occurred_at,
                )
                sets = [c for c in node.sim.pct_calls() if c[:2] == ["set", str(vmid)]]
                self.figures.changes += len(sets)
                if len(sets) != len(applied):
                    problems.append(f"{node.name}/{vmid}: {len(sets)} pct set calls, {len(applied)} applied")
                conf = node.sim.read_conf(vmid)
                if applied and applied[-1].after is not None:
                    after = applied[-1].after
                    if (conf["cores"], conf["memory"]) != (str(after.cores), str(after.memory_mb)):
                        problems.append(f"{node.name}/{vmid}: config {conf} is not the last applied {after}")
        self.figures.stale_samples = sum(
            log.read_text(errors="replace").count('"event": "sample_ignored"')
            for log in (self.workdir / "logs").glob("decider-*.log")
        )
        samples = await js.consumer_info(subjects.METRICS_STREAM, subjects.DECIDER_CONSUMER)
        if samples.num_pending + samples.num_ack_pending:
            problems.append(f"samples left unprocessed: {samples.num_pending + samples.num_ack_pending}")

    # -------------------------------------------------------------- whole

    async def run(self, duration_s: float) -> Figures:
        started = time.monotonic()
        self.build_nodes()
        config = load_config(self.nodes[0].config, env={})
        self.cluster = await asyncio.to_thread(ShippedCluster, self.workdir / "nats", NODES)
        witness = Witness()
        admin = None
        try:
            await self.cluster.provision(replicas=3, config=config)
            admin = await open_connection(self.cluster.urls_for("setup"), max_reconnect_attempts=-1,
                                       reconnect_time_wait=0.2, error_cb=_quiet)  # fmt: skip
            await witness.open(self.cluster)
            self.start_services(self.cluster)
            await self.chaos(admin, duration_s)
            await self.drain(admin, witness)
            self.check_alive()
            await self.account(admin, witness)
        finally:
            await witness.close()
            if admin is not None:
                await admin.close()
            self.group.stop_all()
            self.cluster.stop()
        self.figures.duration_s = time.monotonic() - started
        return self.figures


async def _quiet(exc: Exception) -> None:
    """Connection errors while a server is down are expected here; the figures tell."""


async def read_events(js: Any) -> list[ScaleEvent]:
    """Every event in the stream, from the start (an ephemeral ordered read)."""
    total = (await js.stream_info(subjects.EVENTS_STREAM)).state.messages
    subscription = await js.subscribe(subjects.EVENTS_ALL, ordered_consumer=True)
    events: list[ScaleEvent] = []
    try:
        while len(events) < total:
            message = await subscription.next_msg(timeout=5)
            with contextlib.suppress(CodecError):
                events.append(decode(message.data, ScaleEvent))
    finally:
        await subscription.unsubscribe()
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of chaos (then the drain)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the time)")
    parser.add_argument("--workdir", type=Path, help="keep nodes, configs and logs here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="autoscale-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: seed {seed}, work in {workdir}", file=sys.stderr)
    figures = asyncio.run(ChaosRun(workdir, seed).run(args.duration))
    print(figures.line(), flush=True)
    return 0 if not figures.problems else 1


if __name__ == "__main__":
    sys.exit(main())
