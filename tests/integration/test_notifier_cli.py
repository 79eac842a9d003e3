"""`lxc-autoscale notifier` and `lxc-autoscale notify-receiver` as processes, the way they
are deployed: the notifier signs in as its own NATS user against the shipped
configuration, is killed (SIGKILL) and started again, and never sends an event twice;
its log lines name endpoints but hold no secret."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from services.notifier.payloads import signature
from shared.embedded_broker import free_port
from shared.nats_settings import open_connection
from tests.notifier_support import GOTIFY_TOKEN, KUMA_TOKEN, WEBHOOK_SECRET, publish, scale_event
from tests.notify_endpoints import HttpEndpoint, eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def secrets_env() -> dict[str, str]:
    """The original's secret overrides, with an Uptime Kuma push URL where nothing listens."""
    return {
        "LXC_AUTOSCALE_GOTIFY_TOKEN": GOTIFY_TOKEN,
        "LXC_AUTOSCALE_UPTIME_KUMA_WEBHOOK": f"http://127.0.0.1:{free_port()}/api/push/{KUMA_TOKEN}",
        "LXC_AUTOSCALE_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


def start_notifier(
    config: Path, url: str, log: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(extra_env or {})}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "notifier", "--config", str(config), "--nats-url", url,
             "--log-format", "json"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )  # fmt: skip


def fresh(outcome: str, n: int) -> Any:
    """An event of now: the real clock's notifier skips events older than a day."""
    return scale_event(outcome, n, occurred_at=datetime.now(UTC))


async def wait_for_consumers(admin: Any, count: int) -> None:
    js = admin.jetstream()
    for _ in range(400):
        names = [c.name for c in await js.consumers_info("AUTOSCALE_EVENTS")]
        if sum(n.startswith("notifier-") for n in names) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the notifier's consumers did not appear")


async def test_a_killed_notifier_resumes_without_sending_anything_twice_and_logs_no_secret(
    shipped_broker: Any, tmp_path: Path
) -> None:
    hook, gotify = HttpEndpoint(), HttpEndpoint(status=401)  # gotify refuses our token
    config = tmp_path / "lxc_autoscale.yaml"
    config.write_text(yaml.safe_dump({
        "DEFAULT": {"gotify_url": gotify.base, "webhook_url": f"{hook.base}/hook"},
        "NOTIFIER": {"backoff_initial_s": 0.05, "backoff_max_s": 0.1, "timeout_s": 2},
    }))  # fmt: skip
    log = tmp_path / "notifier.log"
    url = shipped_broker.url_for("notifier")
    admin = await open_connection(shipped_broker.url)
    process = start_notifier(config, url, log, secrets_env())
    try:
        await wait_for_consumers(admin, 3)
        await publish(admin.jetstream(), *(fresh("applied", n) for n in range(1, 4)))
        await eventually(lambda: len(hook.on("/hook")) == 3, 40, "three webhooks")
        process.send_signal(signal.SIGKILL)
        process.wait(10)

        await publish(admin.jetstream(), *(fresh("failed", n) for n in range(4, 6)))
        process = start_notifier(config, url, log, secrets_env())
        await eventually(lambda: len(hook.on("/hook")) == 5, 40, "the two sent while it was down")
        await asyncio.sleep(1.0)  # time for any repeat to show up
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        await admin.close()
        hook.stop()
        gotify.stop()

    ids = [r.json()["event_ids"][0] for r in hook.on("/hook")]
    assert len(ids) == len(set(ids)) == 5
    text = log.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    sent = [x for x in lines if x.get("event") == "notification_sent"]
    failed = [x for x in lines if x.get("event") == "notification_failed"]
    assert {x["endpoint"] for x in sent} == {f"http://127.0.0.1:{hook.port}"}
    assert {x["channel"] for x in failed} >= {"gotify", "uptime-kuma"}
    assert any("HTTP 401" in x["error"] for x in failed if x["channel"] == "gotify")
    for secret in (GOTIFY_TOKEN, KUMA_TOKEN, WEBHOOK_SECRET):
        assert secret not in text


@pytest.mark.parametrize(
    ("failpoint", "copies"),
    [
        # Recorded, not acknowledged: the redelivered event is recognised and not sent.
        pytest.param("notifier.after-record", 1, id="killed-between-record-and-ack"),
        # Sent, not recorded: the documented window, sent once more, recognisably the same.
        pytest.param("notifier.after-send", 2, id="killed-between-send-and-record"),
    ],
)
async def test_a_crash_around_the_delivery_record(
    shipped_broker: Any, tmp_path: Path, failpoint: str, copies: int
) -> None:
    hook = HttpEndpoint()
    config = tmp_path / "lxc_autoscale.yaml"
    # A short retry budget keeps the ack deadline (and so the redelivery) a few seconds away.
    config.write_text(yaml.safe_dump({
        "DEFAULT": {"webhook_url": f"{hook.base}/hook"},
        "NOTIFIER": {"max_attempts": 1, "timeout_s": 1, "backoff_max_s": 0.1},
    }))  # fmt: skip
    log, url = tmp_path / "notifier.log", shipped_broker.url_for("notifier")
    admin = await open_connection(shipped_broker.url)
    js = admin.jetstream()
    process = start_notifier(config, url, log, {"AUTOSCALE_FAILPOINTS": f"{failpoint}=kill"})
    try:
        await wait_for_consumers(admin, 1)
        await publish(js, fresh("failed", 1))
        await eventually(lambda: process.poll() is not None, 40, "the failpoint's SIGKILL")
        assert process.returncode == -signal.SIGKILL and len(hook.on("/hook")) == 1

        process = start_notifier(config, url, log)

        async def settled() -> bool:
            info = await js.consumer_info("AUTOSCALE_EVENTS", "notifier-webhook")
            return info.num_ack_pending == 0 and info.num_pending == 0

        for _ in range(600):  # the redelivery comes after the ack deadline (about 6 s)
            if await settled():
                break
            await asyncio.sleep(0.05)
        assert await settled()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        await admin.close()
        hook.stop()
    requests = hook.on("/hook")
    assert len(requests) == copies
    assert len({r.headers["x-autoscale-delivery"] for r in requests}) == 1


def test_the_receiver_prints_each_notification_and_refuses_a_bad_signature(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "notify-receiver", "--port", str(port), "--secret", "k3y"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert b"listening on http://127.0.0.1:" in process.stdout.readline()
        body = json.dumps({"title": "pve1/101 scale-up applied"}).encode()
        with httpx.Client(trust_env=False) as client:
            good = client.post(f"http://127.0.0.1:{port}/", content=body,
                               headers={"X-Autoscale-Signature": signature("k3y", body)})  # fmt: skip
            bad = client.post(f"http://127.0.0.1:{port}/", content=body,
                              headers={"X-Autoscale-Signature": signature("other", body)})  # fmt: skip
        assert (good.status_code, bad.status_code) == (200, 401)
    finally:
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"[valid] pve1/101 scale-up applied" in out and b"[INVALID]" in out
