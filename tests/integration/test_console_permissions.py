"""The console signed in as the shipped `console` user (deploy/nats/users/console.conf):
it follows samples, events and the buckets, shows the consumers' lag, and its control
writes a pause and a rollback intent (what it may not do: tests/integration/test_permissions.py)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import reading, sample

from services.console.service import ConsoleService
from services.decider.explain import make_explainer
from services.decider.explain_groups import make_group_explainer
from shared import subjects
from shared.codec import encode
from shared.config import parse_config
from shared.dry_run import DryRunEntry
from shared.embedded_broker import free_port
from shared.groups import Member, MembershipRecord
from shared.models import ResourceSize, ScaleEvent
from shared.nats_settings import open_connection
from shared.pauses import PauseEntry
from tests.secure_broker import ShippedBroker

pytestmark = [pytest.mark.integration, pytest.mark.shipped_nodes("pve1")]
TOKEN = "console-permissions-token"
ROOT = Path(__file__).resolve().parents[2]


async def _seed(js: Any) -> None:
    now = datetime.now(UTC)
    await js.publish(subjects.metrics_subject("pve1"), encode(sample(reading(101, cores=3), taken_at=now)))
    event = ScaleEvent(
        event_id="e-1", intent_id="i-1", node="pve1", vmid=101, outcome="applied", detail="resized",
        before=ResourceSize(cores=2, memory_mb=1024), after=ResourceSize(cores=3, memory_mb=1024),
        occurred_at=now,
    )  # fmt: skip
    await js.publish(subjects.events_subject("pve1", 101), encode(event))
    backups = await js.key_value(subjects.BACKUP_BUCKET)
    record = (
        '{"node": "pve1", "vmid": 101, "original": {"cores": 2, "memory_mb": 1024}, '
        f'"saved_at": "{now.isoformat()}", "intent_id": "i-1"}}'
    )
    await backups.put(subjects.state_key("pve1", 101), record.encode())
    groups = await js.key_value(subjects.GROUPS_BUCKET)
    members = MembershipRecord(
        group="web", updated_at=now,
        members=(Member(vmid=101, node="pve1", created=False), Member(vmid=150, node="pve1", created=True)),
    )  # fmt: skip
    await groups.put(subjects.group_members_key("web"), members.to_bytes())


async def _actuator_lag(http: Any, url: str) -> float:
    async with http.get(url) as response:
        text = await response.text()
    series = 'autoscale_consumer_pending_messages{consumer="actuator-pve1",stream="AUTOSCALE_INTENTS"} '
    [line] = [line for line in text.splitlines() if line.startswith(series)]
    return float(line.removeprefix(series))


async def test_the_console_user_can_follow_and_control(shipped_broker: ShippedBroker) -> None:
    admin = await open_connection(shipped_broker.url)
    js = admin.jetstream()
    await _seed(js)
    port = free_port()
    document = {
        "NATS": {"url": shipped_broker.url_for("console")}, "CONSOLE": {"port": port, "token": TOKEN},
        "HORIZONTAL_SCALING_GROUP_web": {"base_snapshot_name": 101},
    }  # fmt: skip
    config = parse_config(document, env={})
    service = ConsoleService(config, make_explainer(config), explain_groups=make_group_explainer(config))
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(service.run(stop, started))
    try:
        await asyncio.wait_for(started.wait(), 20)
        base = f"http://127.0.0.1:{port}/api/v1"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                async with http.get(f"{base}/containers") as response:
                    rows = await response.json()
                async with http.get(f"{base}/events") as response:
                    events = await response.json()
                if rows and events:
                    break
                await asyncio.sleep(0.1)
            assert [r["vmid"] for r in rows] == [101] and rows[0]["rollback_available"]
            assert [e["event_id"] for e in events] == ["e-1"]
            async with http.get(f"{base}/groups") as response:
                [group] = await response.json()
            assert group["group"] == "web" and [m["vmid"] for m in group["members"]] == [101, 150]
            assert [m["kind"] for m in group["members"]] == ["source", "clone"]
            assert group["decision"]["reason"]
            async with http.get(f"{base}/health") as response:
                consumers = {c["consumer"] for c in (await response.json())["consumers"]}
            assert {"deciders", "actuator-pve1"} <= consumers

            body = {"node": "pve1", "vmid": 101, "mode": "scale-down", "reason": "backup"}
            async with http.post(f"{base}/pause", json=body, headers=auth) as response:
                assert response.status == 200, await response.text()
            policy = await js.key_value(subjects.POLICY_BUCKET)
            stored = PauseEntry.model_validate_json((await policy.get("pause.pve1.101")).value)
            assert stored.mode == "scale-down"
            node_pause = {"node": "pve1", "mode": "all"}
            async with http.post(f"{base}/pause", json=node_pause, headers=auth) as response:
                assert (await response.json())["key"] == "pause.pve1.all"
            assert PauseEntry.model_validate_json((await policy.get("pause.pve1.all")).value).mode == "all"
            body = {"switch": "on", "reason": "watch first"}
            async with http.post(f"{base}/dry-run", json=body, headers=auth) as response:
                assert response.status == 200, await response.text()
            assert DryRunEntry.model_validate_json((await policy.get("dry_run")).value).enabled is True
            async with http.post(f"{base}/dry-run", json={"switch": "config"}, headers=auth) as response:
                assert response.status == 200, await response.text()

            intents = (await js.stream_info(subjects.INTENTS_STREAM)).state.messages
            lag = await _actuator_lag(http, f"http://127.0.0.1:{port}/metrics")
            rollback = {"node": "pve1", "vmid": 101}
            async with http.post(f"{base}/rollback", json=rollback, headers=auth) as response:
                assert response.status == 200, await response.text()
                assert (await response.json())["requested"] is True
            assert (await js.stream_info(subjects.INTENTS_STREAM)).state.messages == intents + 1
            # No actuator runs here: the intent waits, and the lag the console exports says so.
            assert await _actuator_lag(http, f"http://127.0.0.1:{port}/metrics") == lag + 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await admin.close()


async def test_status_runs_as_the_console_user(shipped_broker: ShippedBroker, tmp_path: Path) -> None:
    """`lxc-autoscale status` signed in as `console`: the stream answers, the replayed
    samples and events and the bucket reads all come back on the console's own inbox."""
    admin = await open_connection(shipped_broker.url)
    try:
        await _seed(admin.jetstream())
    finally:
        await admin.close()
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text("DEFAULT: {}\n")
    status = subprocess.run(
        [sys.executable, "-m", "cli.main", "status", "--config", str(config), "--vmid", "101", "--json",
         "--nats-url", shipped_broker.url_for("console"), "--log-format", "json"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith(("NATS_", "LXC_AUTOSCALE_"))},
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    row = json.loads(status.stdout)
    assert (row["size"]["cores"], row["rollback_available"]) == (3, True)  # the sample; the backup
    assert [event["event_id"] for event in row["events"]] == ["e-1"]
    assert "permissions violation" not in status.stderr.lower()
