"""End to end: the demo scenario through every service, checked from outside.

The demo runs as a user runs it (`lxc-autoscale demo`), against a broker this test
owns, so a plain NATS client can watch the events and the stream can be replayed
afterwards.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import msgpack
import pytest

from shared import subjects
from shared.codec import decode
from shared.embedded_broker import EmbeddedBroker
from shared.models import ScaleEvent
from shared.nats_settings import open_connection
from tests.notify_endpoints import HttpEndpoint

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = json.loads((ROOT / "simnode" / "scenarios" / "demo.json").read_text())
EVENT_SCHEMA = json.loads((ROOT / "docs" / "schemas" / "scale-event.schema.json").read_text())
SUMMARY = re.compile(
    r"^summary: intents=(\d+) applied=(\d+) skipped=(\d+) failed=(\d+) scale_up=(\d+) scale_down=(\d+)$"
)

pytestmark = pytest.mark.e2e
WEBHOOK_SECRET = "demoHookSecretT6"


def _conf(workdir: Path, vmid: int) -> dict[str, str]:
    path = workdir / "node" / "etc" / "pve" / "lxc" / f"{vmid}.conf"
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("["):
            break  # snapshot sections follow the current config
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            values[key.strip()] = value.strip()
    return values


async def _run_demo_while_watching(
    broker: EmbeddedBroker, workdir: Path, notify_url: str
) -> tuple[str, list[bytes]]:
    raw_events: list[bytes] = []
    watcher = await open_connection(broker.url)

    async def collect(msg: Any) -> None:
        raw_events.append(msg.data)

    await watcher.subscribe(subjects.EVENTS_ALL, cb=collect)
    env = {**os.environ, "NATS_URL": broker.url, "LXC_AUTOSCALE_WEBHOOK_SECRET": WEBHOOK_SECRET}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "demo", "--workdir", str(workdir), "--duration", "85",
        "--notify-url", notify_url, "--console-port", "0",  # never the default 8089: demos run side by side
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=ROOT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(process.communicate(), timeout=150)
    await watcher.drain()
    output = out.decode()
    assert process.returncode == 0, output
    return output, raw_events


async def _replay_events(broker: EmbeddedBroker) -> list[ScaleEvent]:
    nc = await open_connection(broker.url)
    js = nc.jetstream()
    info = await js.stream_info(subjects.EVENTS_STREAM)
    sub = await js.subscribe(subjects.EVENTS_ALL, ordered_consumer=True)
    events = []
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=5)
        events.append(decode(msg.data, ScaleEvent))
    await nc.close()
    return events


async def test_the_demo_grows_busy_containers_shrinks_idle_ones_and_touches_nothing_else(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    workdir = tmp_path / "demo"
    receiver = HttpEndpoint()  # the webhook receiver given to --notify-url
    try:
        output, raw_events = await _run_demo_while_watching(broker, workdir, f"{receiver.base}/notify")
    finally:
        receiver.stop()

    last_line = output.strip().splitlines()[-1]
    match = SUMMARY.match(last_line)
    assert match, f"last line is not the summary: {last_line!r}"
    intents, applied, _skipped, failed, scale_up, scale_down = map(int, match.groups())
    assert scale_up >= 1 and scale_down >= 1 and failed == 0
    assert applied >= 2 and intents >= applied

    # A plain client saw msgpack events that follow the published JSON Schema.
    assert raw_events
    for payload in raw_events:
        jsonschema.validate(msgpack.unpackb(payload), EVENT_SCHEMA)

    initial = {c["vmid"]: c for c in SCENARIO["containers"]}
    final = {vmid: _conf(workdir, vmid) for vmid in initial}
    assert int(final[101]["cores"]) > initial[101]["cores"], "the CPU-saturated web1 should grow"
    assert int(final[201]["memory"]) > initial[201]["memory_mb"], "the memory-pressured db1 should grow"
    assert int(final[103]["cores"]) < initial[103]["cores"], "the idle web3 should shrink"
    for steady in (102, 202):
        assert int(final[steady]["cores"]) == initial[steady]["cores"]
        assert int(final[steady]["memory"]) == initial[steady]["memory_mb"]

    # Every applied event matches a change in the conf files, in order, and nothing else changed.
    events = await _replay_events(broker)

    # --notify-url: one signed webhook per applied event, none twice, the secret in no log.
    notified = [r.json()["event_ids"][0] for r in receiver.on("/notify")]
    assert sorted(notified) == sorted(e.event_id for e in events if e.outcome == "applied")
    for request in receiver.on("/notify"):
        digest = hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-autoscale-signature"] == f"sha256={digest}"
    assert "demo: notifications to http://127.0.0.1:" in output
    assert WEBHOOK_SECRET not in (workdir / "logs" / "notifier.log").read_text() + output
    assert sum(e.outcome == "applied" for e in events) == applied
    for vmid, spec in initial.items():
        size = (spec["cores"], spec["memory_mb"])
        for event in (e for e in events if e.vmid == vmid and e.outcome == "applied"):
            assert event.before is not None and event.after is not None
            assert (event.before.cores, event.before.memory_mb) == size
            size = (event.after.cores, event.after.memory_mb)
        assert (int(final[vmid]["cores"]), int(final[vmid]["memory"])) == size
        assert final[vmid]["hostname"] == spec["hostname"]
