"""Helpers for the notifier tests: scale events, configs pointing at local endpoints,
and an in-process notifier that can be started and stopped (a restart)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from services.notifier.records import DeliveryRecord, record_key
from services.notifier.wiring import Notifier, build_notifier
from shared import subjects
from shared.clock import FakeClock
from shared.codec import encode
from shared.config import AutoscaleConfig, parse_config
from shared.models import DecisionReason, ResourceSize, ScaleEvent, event_id_for
from shared.nats_settings import open_connection
from tests.support import T0

GOTIFY_TOKEN = "gotifyAppTokenQ7x2"
SMTP_PASSWORD = "smtpPassw0rdZ9k"
WEBHOOK_SECRET = "hmacSecretW4v8"
KUMA_TOKEN = "kumaPushTokenM3n5"
SECRETS = (GOTIFY_TOKEN, SMTP_PASSWORD, WEBHOOK_SECRET, KUMA_TOKEN)

REASON = DecisionReason(rule="cpu-high", summary="cpu 95.0% > 80%: cores 2 → 3")
DETAIL = {"applied": "applied", "failed": "command-failed", "rejected": "over-capacity", "skipped": "stale"}
MESSAGE = {
    "failed": "pct set 101 exited 255: CT 101 is locked (backup)",
    "rejected": "3 cores is over the host's 2 free cores",
}


def scale_event(outcome: str = "applied", n: int = 1, vmid: int = 101, **overrides: Any) -> ScaleEvent:
    intent_id = f"{n:032x}"
    before = ResourceSize(cores=2, memory_mb=1024)
    target = ResourceSize(cores=3, memory_mb=1024)
    values: dict[str, Any] = {
        "event_id": event_id_for(intent_id, outcome, DETAIL[outcome]),  # type: ignore[arg-type]
        "intent_id": intent_id,
        "node": "pve1",
        "vmid": vmid,
        "outcome": outcome,
        "detail": DETAIL[outcome],
        "message": MESSAGE.get(outcome, ""),
        "before": before,
        "after": target if outcome == "applied" else None,
        "target": target,
        "reason": REASON,
        "occurred_at": T0,
    }
    values.update(overrides)
    return ScaleEvent(**values)


async def publish(js: Any, *events: ScaleEvent) -> None:
    for event in events:
        await js.publish(
            subjects.events_subject(event.node, event.vmid), encode(event),
            headers={"Nats-Msg-Id": event.event_id},
        )  # fmt: skip


FAST_RETRIES = {"backoff_initial_s": 0.01, "backoff_max_s": 0.02, "timeout_s": 2}


def notifier_config(
    *, gotify: str | None = None, smtp: Any = None, kuma: str | None = None,
    webhook: str | None = None, **notifier: Any,
) -> AutoscaleConfig:  # fmt: skip
    """Channels as the original's keys and LXC_AUTOSCALE_* overrides set them."""
    defaults: dict[str, Any] = {}
    env: dict[str, str] = {}
    if gotify:
        defaults["gotify_url"] = gotify
        env["LXC_AUTOSCALE_GOTIFY_TOKEN"] = GOTIFY_TOKEN
    if smtp is not None:
        defaults.update(
            smtp_server="127.0.0.1", smtp_port=smtp.port, smtp_username="mailer",
            smtp_from="autoscale@example.org", smtp_to=["ops@example.org", "lead@example.org"],
            smtp_ca_file=str(smtp.ca_file), smtp_security=smtp.security,
        )  # fmt: skip
        env["LXC_AUTOSCALE_SMTP_PASSWORD"] = SMTP_PASSWORD
    if kuma:
        env["LXC_AUTOSCALE_UPTIME_KUMA_WEBHOOK"] = kuma
    if webhook:
        defaults["webhook_url"] = webhook
        env["LXC_AUTOSCALE_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    return parse_config(
        {"DEFAULT": defaults, "NOTIFIER": {**FAST_RETRIES, **notifier}}, path="test.yaml", env=env
    )


@dataclass
class RunningNotifier:
    notifier: Notifier
    stop_event: asyncio.Event
    task: asyncio.Task[None]
    nc: Any

    def worker(self, channel: str) -> Any:
        return self.notifier.service.worker(channel)

    async def stop(self) -> None:
        self.stop_event.set()
        await asyncio.wait_for(self.task, 30)
        await self.notifier.close()
        await self.nc.close()


async def start_notifier(url: str, config: AutoscaleConfig, clock: FakeClock) -> RunningNotifier:
    """Build and run the notifier on a connection of its own, as a process would;
    return once every channel's consumer exists."""

    nc = await open_connection(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
    js = nc.jetstream()
    notifier = await build_notifier(js, config, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.service.run(stop))
    for worker in notifier.service.workers:
        for _ in range(1500):  # 30 s at most
            try:
                await js.consumer_info(subjects.EVENTS_STREAM, subjects.notifier_consumer(worker.channel))
                break
            except Exception:
                await asyncio.sleep(0.02)
    return RunningNotifier(notifier, stop, task, nc)


async def record_of(nc: Any, event: ScaleEvent, channel: str) -> DeliveryRecord | None:
    kv = await nc.jetstream().key_value(subjects.NOTIFIER_BUCKET)
    try:
        entry = await kv.get(record_key(event.event_id, channel))
    except Exception:
        return None
    return DeliveryRecord.decode(entry.value)
