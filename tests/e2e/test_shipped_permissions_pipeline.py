"""End to end under the shipped permissions: setup runs as admin, then the real
collector, decider and actuator processes each sign in as their own user of
deploy/nats/nats-server.conf (collector-pve1, decider, actuator-pve1) and scale the demo
scenario's simulated node; the observer user watches the events.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest
import yaml

from cli.demo import demo_config
from cli.processes import ProcessGroup
from shared import subjects
from shared.codec import decode
from shared.models import ScaleEvent
from shared.nats_settings import open_connection
from simnode.scenario import build_scenario
from tests.secure_broker import ShippedBroker

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_FILE = ROOT / "simnode" / "scenarios" / "demo.json"
SCENARIO = json.loads(SCENARIO_FILE.read_text())
NODE = SCENARIO["node"]

pytestmark = [pytest.mark.e2e, pytest.mark.shipped_nodes(NODE)]


async def test_every_service_does_its_job_with_its_own_credentials(
    shipped_broker: ShippedBroker, tmp_path: Path
) -> None:
    node, _profiles = build_scenario(tmp_path / "node", SCENARIO_FILE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(demo_config(SCENARIO, node.root, node.pct_path)))
    setup = subprocess.run(
        [sys.executable, "-m", "cli.main", "setup", "--config", str(config),
         "--nats-url", shipped_broker.url_for("setup"), "--log-format", "json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr

    observer = await open_connection(shipped_broker.url_for("observer"))
    applied: list[ScaleEvent] = []

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        event = decode(msg.data, ScaleEvent)
        if event.outcome == "applied":
            applied.append(event)

    await observer.jetstream().subscribe(
        subjects.EVENTS_ALL, stream=subjects.EVENTS_STREAM, ordered_consumer=True, cb=on_event
    )
    group = ProcessGroup(log_dir=tmp_path / "logs")

    def service(name: str, url: str) -> list[str]:
        return ["cli.main", name, "--config", str(config), "--nats-url", url, "--log-format", "json"]

    try:
        workload = ["simnode.workload", "--root", str(tmp_path / "node"), "--profile", str(SCENARIO_FILE)]
        group.start("workload", workload)
        group.start("actuator", service("actuator", shipped_broker.url_for("actuator", NODE)))
        group.start("decider", service("decider", shipped_broker.url_for("decider")))
        group.start("collector", service("collector", shipped_broker.url_for("collector", NODE)))
        deadline = time.monotonic() + 90
        while not applied and time.monotonic() < deadline and not group.dead():
            await asyncio.sleep(0.5)
        dead = {m.name: group.tail(m) for m in group.dead()}
    finally:
        group.stop_all()
        await observer.close()
    logs = {path.stem: path.read_text(errors="replace") for path in (tmp_path / "logs").glob("*.log")}
    assert not dead, dead
    assert applied, f"no change applied within 90 s; logs: {logs}"
    event = applied[0]  # the change really happened on the node, as the event says
    assert event.node == NODE and event.after is not None and event.after != event.before
    assert any(call[:2] == ["set", str(event.vmid)] for call in node.pct_calls())
    everything = "\n".join(logs.values()).lower()
    assert "permissions violation" not in everything
    assert "authorization violation" not in everything
