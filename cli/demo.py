"""`lxc-autoscale demo`: the whole system against a simulated Proxmox node.

Starts a private broker (unless NATS_URL is set), builds a simulated node with a
scripted load, runs the workload driver, collector, decider replicas and actuator
as separate processes, prints every scaling event as it happens and ends with

    summary: intents=N applied=N skipped=N failed=N scale_up=N scale_down=N

with ` scale_out=N scale_in=N` added for a scenario with horizontal groups
(`--scenario horizontal`: a group cloned out under load and back in when it ends).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cli.processes import ProcessGroup
from cli.setup import actuator_consumers, setup_nodes
from shared import subjects
from shared.codec import CodecError, decode, decode_intent
from shared.config import load_config
from shared.embedded_broker import EmbeddedBroker, free_port, port_is_free, start_broker
from shared.event_text import format_line
from shared.models import ScaleEvent
from shared.nats_settings import open_connection
from shared.provisioning import provision

SCENARIOS = Path(__file__).resolve().parent.parent / "simnode" / "scenarios"
SCENARIO = SCENARIOS / "demo.json"
COLLECT_INTERVAL_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: 80, 150 with groups)"
    )
    parser.add_argument("--forever", action="store_true", help="run until Ctrl-C")
    parser.add_argument(
        "--scenario", type=scenario_path, default=SCENARIO,
        help="simulated node and load: a JSON file or a bundled name (demo, horizontal)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, help="keep the node, config and logs here")
    parser.add_argument("--deciders", type=int, default=2, help="decider replicas to run")
    parser.add_argument(
        "--console-port", type=int, default=8089, help="the console's port (a free one if it is taken)"
    )
    parser.add_argument(
        "--notify-url",
        help="also run the notifier and send every event to this webhook "
        "(e.g. http://127.0.0.1:8099/ from `lxc-autoscale notify-receiver`)",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="give every service a /metrics port and print it"
    )


def scenario_path(text: str) -> Path:
    """A scenario file, or the name of one in simnode/scenarios/."""
    path = Path(text)
    if path.is_file():
        return path
    named = SCENARIOS / f"{text}.json"
    if "/" not in text and named.is_file():
        return named
    bundled = ", ".join(sorted(p.stem for p in SCENARIOS.glob("*.json")))
    raise argparse.ArgumentTypeError(f"no scenario {text!r}: give a JSON file or one of {bundled}")


@dataclass
class Tally:
    intents: set[str] = field(default_factory=set)
    outcomes: dict[str, int] = field(
        default_factory=lambda: {"applied": 0, "skipped": 0, "failed": 0, "rejected": 0}
    )
    scale_up: int = 0
    scale_down: int = 0
    horizontal: bool = False  # the scenario has groups: count and show scale-outs and -ins
    scale_out: int = 0
    scale_in: int = 0
    last_activity: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        o = self.outcomes
        return (
            f"summary: intents={len(self.intents)} applied={o['applied']} skipped={o['skipped']} "
            f"failed={o['failed'] + o['rejected']} scale_up={self.scale_up} scale_down={self.scale_down}"
        ) + (f" scale_out={self.scale_out} scale_in={self.scale_in}" if self.horizontal else "")

    def planned_outcome_reached(self) -> bool:
        if self.horizontal:
            return self.scale_out >= 1 and self.scale_in >= 1
        return self.scale_up >= 1 and self.scale_down >= 1


def _in_a_group(scenario: dict[str, Any], container: dict[str, Any]) -> bool:
    tags = str(container.get("tags") or "").split(";")
    return any(load["tag"] in tags for load in scenario.get("groups") or [])


def _group_sections(scenario: dict[str, Any]) -> dict[str, Any]:
    """For each load group of the scenario (simnode spreads its load over the members,
    the containers with its tag), a HORIZONTAL_SCALING_GROUP whose source is the first
    member, with periods short enough to show a scale-out and a scale-in in two minutes.
    The vertical policy keeps its hands off every container that could be a member (a
    tier with `pause: all`), so what the demo shows is the group's own doing."""
    sections: dict[str, Any] = {}
    for load in scenario.get("groups") or []:
        members = [c["vmid"] for c in scenario["containers"] if _in_a_group(scenario, c)
                   and load["tag"] in str(c.get("tags")).split(";")]  # fmt: skip
        if members:
            sections[f"HORIZONTAL_SCALING_GROUP_{load['name']}"] = {
                "base_snapshot_name": str(members[0]), "lxc_containers": members[1:],
                "min_instances": 1, "max_instances": 3,
                "horiz_cpu_upper_threshold": 80, "horiz_cpu_lower_threshold": 20,
                "horiz_memory_upper_threshold": 90, "horiz_memory_lower_threshold": 60,
                "scale_out_grace_period": 8, "scale_in_grace_period": 8,
                "ready_after_s": 2 * COLLECT_INTERVAL_S, "action_timeout_s": 60,
            }  # fmt: skip
    if sections:
        others = {c["vmid"] for c in scenario["containers"] if not _in_a_group(scenario, c)}
        candidates = sorted(set(range(100, 1000)) - others)
        sections["TIER_horizontal"] = {"lxc_containers": candidates, "pause": "all"}
    return sections


def demo_config(scenario: dict[str, Any], node_root: Path, pct_path: Path) -> dict[str, Any]:
    """A policy that shows the behaviour within a minute: short intervals and windows."""
    groups = _group_sections(scenario)
    vmids = [c["vmid"] for c in scenario["containers"] if not _in_a_group(scenario, c)]
    return groups | {
        "DEFAULT": {
            "cpu_upper_threshold": 80,
            "cpu_lower_threshold": 20,
            "memory_upper_threshold": 80,
            "memory_lower_threshold": 25,
            "min_cores": 1,
            "max_cores": 8,
            "min_memory": 512,
            "max_memory": 8192,
            "reserve_cpu_percent": 10,
            "reserve_memory_mb": 2048,
            "scale_down_stabilization_s": 6,
            "cooldown_up_s": 4,
            "cooldown_down_s": 6,
            "warmup_s": 0,
            # The original's memory formula adds (mem - upper) x increment / factor; a larger
            # factor keeps the demo's steps readable. Off-peak is off so any hour shows the same.
            "memory_scale_factor": 15,
            "off_peak_start": 0,
            "off_peak_end": 0,
        },
        "TIER_web": {
            "lxc_containers": [v for v in vmids if v < 200],
            "max_cores": 6,
            "min_decrease_chunk": 1024,
        },
        "TIER_db": {
            "lxc_containers": [v for v in vmids if v >= 200],
            "min_memory": 1024,
            "memory_min_increment": 512,
        },
        "COLLECTOR": {
            "node": scenario["node"],
            "interval_s": COLLECT_INTERVAL_S,
            "source": "sim",
            "root": str(node_root),
        },
        "DECIDER": {"intent_ttl_s": 60},
        "ACTUATOR": {
            "node": scenario["node"],
            "pct_path": str(pct_path),
            "pvesh_path": str(node_root / "usr" / "bin" / "pvesh"),  # the simulated node's, for nextid
            "root": str(node_root),
            # The simulated host's size: otherwise the actuator would read the machine it runs on.
            "host_cores": scenario["host_cores"],
            "host_memory_mb": scenario["host_memory_mb"],
        },
    }


class Demo:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.tally = Tally()
        self.broker: EmbeddedBroker | None = None
        self.group = ProcessGroup(log_dir=workdir / "logs")

    def prepare(self) -> tuple[str, Path]:
        from simnode.scenario import build_scenario

        scenario = json.loads(self.args.scenario.read_text())
        self.tally.horizontal = bool(scenario.get("groups"))
        if self.args.duration is None:
            self.args.duration = 150.0 if self.tally.horizontal else 80.0
        node, _profiles = build_scenario(self.workdir / "node", self.args.scenario)
        config_path = self.workdir / "config.yaml"
        config = demo_config(scenario, node.root, node.pct_path)
        if self.args.notify_url:
            # LXC_AUTOSCALE_WEBHOOK_SECRET, if set, reaches the notifier through the environment.
            config["DEFAULT"]["webhook_url"] = self.args.notify_url
        config_path.write_text(yaml.safe_dump(config))
        url = os.environ.get("NATS_URL")
        if not url:
            self.broker = start_broker(self.workdir / "nats")
            url = self.broker.url
        print(f"demo: broker {url}; simulated node {scenario['node']} at {node.root}", flush=True)
        print(f"demo: logs in {self.group.log_dir}", flush=True)
        return url, config_path

    def start_services(self, url: str, config_path: Path) -> None:
        common = ["--config", str(config_path), "--nats-url", url, "--log-format", "json"]
        node_root = self.workdir / "node"
        self.group.start(
            "workload",
            ["simnode.workload", "--root", str(node_root), "--profile", str(self.args.scenario)],
        )
        self.group.start("actuator", ["cli.main", "actuator", *common, *self._metrics("actuator")])
        for replica in range(self.args.deciders):
            name = f"decider-{replica + 1}"
            self.group.start(
                name,
                ["cli.main", "decider", *common, "--replica-id", f"demo-{replica + 1}", *self._metrics(name)],
            )
        self.group.start("collector", ["cli.main", "collector", *common, *self._metrics("collector")])
        requested = self.args.console_port
        port = requested if requested and port_is_free(requested) else free_port()
        self.group.start("console", ["cli.main", "console", *common, "--port", str(port)])
        control = "enabled" if os.environ.get("LXC_AUTOSCALE_CONSOLE_TOKEN") else (
            "disabled (set LXC_AUTOSCALE_CONSOLE_TOKEN to enable)"
        )
        print(f"demo: console http://127.0.0.1:{port}/ (control {control})", flush=True)

    async def start_notifier(self, nc: Any, url: str, config_path: Path) -> None:
        """Start the notifier first (so it stops last) and wait for its consumer: it takes
        events from the moment it exists."""
        from services.notifier.endpoints import display

        args = ["--config", str(config_path), "--nats-url", url, "--log-format", "json"]
        self.group.start("notifier", ["cli.main", "notifier", *args])
        consumer = subjects.notifier_consumer("webhook")
        for _ in range(300):
            with contextlib.suppress(Exception):
                await nc.jetstream().consumer_info(subjects.EVENTS_STREAM, consumer)
                break
            await asyncio.sleep(0.05)
        print(f"demo: notifications to {display(self.args.notify_url)}", flush=True)

    def _metrics(self, name: str) -> list[str]:
        """With --metrics, each service serves /metrics, /healthz and /readyz on its own port."""
        if not self.args.metrics:
            return []
        port = free_port()
        print(f"demo: metrics {name} http://127.0.0.1:{port}/metrics", flush=True)
        return ["--metrics-port", str(port)]

    async def watch(self, url: str, config_path: Path) -> int:
        nc = await open_connection(url, max_reconnect_attempts=-1)
        # What `lxc-autoscale setup` does, before any service starts: they only check it.
        config = load_config(config_path, env={})
        await provision(nc.jetstream(), consumers=actuator_consumers(config, setup_nodes(config, [], {})))
        await nc.subscribe(subjects.EVENTS_ALL, cb=self._on_event)
        await nc.subscribe(subjects.INTENTS_ALL, cb=self._on_intent)
        if self.args.notify_url:
            await self.start_notifier(nc, url, config_path)
        self.start_services(url, config_path)
        try:
            return await self._wait_until_done()
        finally:
            await nc.drain()

    async def _on_event(self, msg: Any) -> None:
        try:
            event = decode(msg.data, ScaleEvent)
        except CodecError as exc:
            print(f"demo: undecodable event on {msg.subject}: {exc}", flush=True)
            return
        self.tally.outcomes[event.outcome] += 1
        self.tally.scale_up += int(event.scaled_up)
        self.tally.scale_down += int(event.scaled_down)
        if event.group is not None and event.outcome == "applied" and not event.dry_run:
            self.tally.scale_out += int(event.group.action == "scale-out")
            self.tally.scale_in += int(event.group.action == "scale-in")
        self.tally.last_activity = time.monotonic()
        print(format_line(event), flush=True)

    async def _on_intent(self, msg: Any) -> None:
        with contextlib.suppress(CodecError):
            # Replicas may publish the same intent; the stream keeps one, we count ids.
            self.tally.intents.add(decode_intent(msg.data).intent_id)
            self.tally.last_activity = time.monotonic()

    async def _wait_until_done(self) -> int:
        deadline = None if self.args.forever else time.monotonic() + self.args.duration
        while deadline is None or time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            if dead := self.group.dead():
                for member in dead:
                    print(f"demo: {member.name} exited with {member.process.returncode}:", flush=True)
                    print(self.group.tail(member), flush=True)
                return 1
            settled = time.monotonic() - self.tally.last_activity > 5 * COLLECT_INTERVAL_S
            if not self.args.forever and self.tally.planned_outcome_reached() and settled:
                return 0
        return 0 if self.tally.planned_outcome_reached() else 1

    def stop(self) -> None:
        self.group.stop_all()
        if self.broker is not None:
            self.broker.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    owned = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="autoscale-demo-")) if owned else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(args, workdir)
    # SIGTERM behaves like Ctrl-C, so the services and the broker are always stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    status = 1
    try:
        url, config_path = demo.prepare()
        status = asyncio.run(demo.watch(url, config_path))
    except KeyboardInterrupt:
        print("demo: interrupted", flush=True)
        status = 130
    finally:
        demo.stop()
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)
        failed = demo.tally.outcomes["failed"] + demo.tally.outcomes["rejected"]
        if status == 0 and failed:
            status = 1
        print(demo.tally.summary(), flush=True)
    sys.stdout.flush()
    return status
