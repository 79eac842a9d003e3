"""The notifier against real endpoints on 127.0.0.1 (an HTTP server standing in for
Gotify, Uptime Kuma and a webhook receiver; aiosmtpd with STARTTLS or TLS and a login)
and a real nats-server running the shipped configuration, the notifier signed in as
its own `notifier` user. Time that matters (breaker pause, digest interval) is a fake clock."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from shared import subjects
from shared.clock import FakeClock
from shared.logs import setup_logging
from shared.nats_settings import open_connection
from tests.notifier_support import (
    GOTIFY_TOKEN,
    KUMA_TOKEN,
    REASON,
    SECRETS,
    WEBHOOK_SECRET,
    notifier_config,
    publish,
    record_of,
    scale_event,
    start_notifier,
)
from tests.notify_endpoints import HttpEndpoint, SmtpEndpoint, eventually

pytestmark = pytest.mark.integration
CHANNELS = ("gotify", "email", "uptime-kuma", "webhook")


@pytest.fixture
async def nc(shipped_broker: Any) -> AsyncIterator[Any]:
    """The operator's connection (setup/admin user) that publishes the events."""

    client = await open_connection(shipped_broker.url)
    yield client
    await client.close()


@pytest.fixture
def notifier_url(shipped_broker: Any) -> str:
    return str(shipped_broker.url_for("notifier"))


@pytest.fixture
def http() -> Iterator[HttpEndpoint]:
    endpoint = HttpEndpoint()
    yield endpoint
    endpoint.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpEndpoint]:
    endpoint = SmtpEndpoint(tmp_path, security="starttls", user="mailer", password="smtpPassw0rdZ9k")
    yield endpoint
    endpoint.stop()


def all_channels(http: HttpEndpoint, smtp: SmtpEndpoint, **notifier: Any) -> Any:
    return notifier_config(
        gotify=f"{http.base}/gotify", smtp=smtp, kuma=f"{http.base}/api/push/{KUMA_TOKEN}?ping=",
        webhook=f"{http.base}/hook", **notifier,
    )  # fmt: skip


def received(http: HttpEndpoint, smtp: SmtpEndpoint) -> dict[str, int]:
    return {
        "gotify": len(http.on("/gotify/message")),
        "email": len(smtp.messages),
        "uptime-kuma": len(http.on(f"/api/push/{KUMA_TOKEN}")),
        "webhook": len(http.on("/hook")),
    }


async def test_each_channel_gets_the_right_message_for_applied_failed_and_rejected(
    notifier_url: str, nc: Any, http: HttpEndpoint, smtp: SmtpEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("notifier", json_lines=True, level="INFO")
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # the test SMTP server's own log
    running = await start_notifier(notifier_url, all_channels(http, smtp), FakeClock())
    outcomes = ("applied", "failed", "rejected")
    applied, failed, rejected = (scale_event(o, n) for n, o in enumerate(outcomes, 1))
    skipped = scale_event("skipped", 4)  # not selected by default
    await publish(nc.jetstream(), applied, skipped, failed, rejected)
    await eventually(lambda: received(http, smtp) == dict.fromkeys(CHANNELS, 3), what="3 per channel")
    await running.stop()

    gotify = http.on("/gotify/message")
    assert {r.headers["x-gotify-key"] for r in gotify} == {GOTIFY_TOKEN}
    bodies = [r.json() for r in gotify]
    assert [b["priority"] for b in bodies] == [5, 8, 7]
    assert "pve1/101 scale-up applied: 2 cores, 1024 MB → 3 cores, 1024 MB" in bodies[0]["title"]
    for body in bodies:
        assert "Node: pve1" in body["message"] and "Container: 101" in body["message"]
        assert f"Reason: {REASON.summary}" in body["message"]
    assert "CT 101 is locked" in bodies[1]["message"] and "failed" in bodies[1]["title"]
    assert "→ 3 cores, 1024 MB (not applied)" in bodies[2]["message"] and "rejected" in bodies[2]["title"]

    kuma = http.on(f"/api/push/{KUMA_TOKEN}")
    assert [r.method for r in kuma] == ["GET"] * 3
    assert [r.query["status"] for r in kuma] == ["up", "down", "up"]
    assert "scale-up applied" in kuma[0].query["msg"] and "failed" in kuma[1].query["msg"]

    for request, event in zip(http.on("/hook"), (applied, failed, rejected), strict=True):
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert request.headers["x-autoscale-signature"] == expected
        payload = request.json()
        assert payload["event_ids"] == [event.event_id] and payload["digest"] is False
        assert payload["events"][0]["outcome"] == event.outcome
        assert request.headers["x-autoscale-delivery"] == event.event_id

    for (login, mail), title in zip(smtp.messages, (b["title"] for b in bodies), strict=True):
        assert login == "mailer"  # logged in, after STARTTLS (the server requires it)
        assert " ".join(mail["Subject"].split()) == title  # folding may add a space
        assert mail["To"] == "ops@example.org, lead@example.org"
        assert REASON.summary in mail.get_content()

    for event in (applied, failed, rejected):
        for channel in CHANNELS:
            record = await record_of(nc, event, channel)
            assert record is not None and record.status == "sent", (channel, event.outcome)
    assert await record_of(nc, skipped, "gotify") is None

    logs = capsys.readouterr().err
    assert "notification_sent" in logs
    for secret in SECRETS:
        assert secret not in logs


async def test_a_restart_sends_nothing_twice_even_when_every_ack_was_lost(
    notifier_url: str, nc: Any, http: HttpEndpoint, smtp: SmtpEndpoint
) -> None:
    js = nc.jetstream()
    config = all_channels(http, smtp)
    first = await start_notifier(notifier_url, config, FakeClock())
    await publish(js, *(scale_event("applied", n) for n in range(1, 4)))
    await eventually(lambda: received(http, smtp) == dict.fromkeys(CHANNELS, 3), what="first three")
    await first.stop()

    await publish(js, *(scale_event("failed", n) for n in range(4, 6)))  # while it is down
    second = await start_notifier(notifier_url, config, FakeClock())
    await eventually(lambda: received(http, smtp) == dict.fromkeys(CHANNELS, 5), what="the two new ones")
    await second.stop()

    # Every ack lost: the consumers start again from the first event. The records hold.
    for channel in CHANNELS:
        name = subjects.notifier_consumer(channel)
        await js.delete_consumer(subjects.EVENTS_STREAM, name)
        await js.add_consumer(
            subjects.EVENTS_STREAM,
            ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                           deliver_policy=DeliverPolicy.ALL, filter_subject=subjects.EVENTS_ALL),
        )  # fmt: skip
    third = await start_notifier(notifier_url, config, FakeClock())

    async def all_acked() -> bool:
        for channel in CHANNELS:
            info = await js.consumer_info(subjects.EVENTS_STREAM, subjects.notifier_consumer(channel))
            if info.num_pending or info.num_ack_pending or info.delivered.stream_seq < 5:
                return False
        return True

    for _ in range(1500):  # 30 s at most
        if await all_acked():
            break
        await asyncio.sleep(0.02)
    assert await all_acked()
    await third.stop()
    assert received(http, smtp) == dict.fromkeys(CHANNELS, 5)
    assert all(w.counts["already_recorded"] == 5 for w in third.notifier.service.workers)


async def test_a_down_endpoint_opens_its_breaker_others_still_receive_and_it_closes_again(
    notifier_url: str, nc: Any, http: HttpEndpoint, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("notifier", json_lines=True, level="INFO")
    hook = HttpEndpoint()
    hook_token = "hookPathTokenR2d2"
    hook.stop()  # down: connection refused
    clock = FakeClock()
    config = notifier_config(
        gotify=f"{http.base}/gotify", webhook=f"{hook.base}/hook/{hook_token}",
        breaker_failures=2, breaker_reset_s=30, max_attempts=3,
    )  # fmt: skip
    running = await start_notifier(notifier_url, config, clock)
    webhook = running.worker("webhook")
    js = nc.jetstream()
    try:
        e1, e2, e3, e4 = (scale_event("applied", n) for n in range(1, 5))
        await publish(js, e1)
        await eventually(lambda: len(http.on("/gotify/message")) == 1, what="gotify gets e1")
        await eventually(lambda: webhook.counts["failed"] == 1, what="webhook gives up e1")
        assert webhook.deliverer.breaker.state == "open"
        record = await record_of(nc, e1, "webhook")
        assert record is not None and record.status == "failed" and record.attempts == 2
        assert "ConnectError" in record.error and "circuit open" in record.error

        await publish(js, e2)  # breaker open: no call at all, the stream moves on
        await eventually(lambda: len(http.on("/gotify/message")) == 2, what="gotify gets e2")
        await eventually(lambda: webhook.counts["failed"] == 2, what="webhook fails fast on e2")
        record = await record_of(nc, e2, "webhook")
        assert record is not None and "CircuitOpen" in record.error and record.attempts == 0

        hook.start()  # back, but the pause is not over: still no call
        await publish(js, e3)
        await eventually(lambda: webhook.counts["failed"] == 3, what="still open for e3")
        assert hook.requests == []

        clock.advance(31)  # the pause is over: one trial call, which succeeds
        await publish(js, e4)
        await eventually(lambda: len(hook.requests) == 1, what="webhook gets e4")
        await eventually(lambda: webhook.counts["sent"] == 1, what="e4 recorded")
        assert webhook.deliverer.breaker.state == "closed"
        assert hook.requests[0].json()["event_ids"] == [e4.event_id]
        assert len(http.on("/gotify/message")) == 4
    finally:
        await running.stop()
        hook.stop()
    logs = capsys.readouterr().err
    events = [json.loads(line).get("event") for line in logs.splitlines() if line.startswith("{")]
    assert events.count("breaker_opened") == 1 and events.count("breaker_closed") == 1
    assert hook_token not in logs and GOTIFY_TOKEN not in logs and WEBHOOK_SECRET not in logs


async def test_digest_groups_a_burst_of_50_events_into_one_message_per_channel(
    notifier_url: str, nc: Any, http: HttpEndpoint, smtp: SmtpEndpoint
) -> None:
    clock = FakeClock()
    running = await start_notifier(notifier_url, all_channels(http, smtp, digest_interval_s=60), clock)
    burst = [scale_event("applied", n, vmid=100 + n) for n in range(1, 51)]
    await publish(nc.jetstream(), *burst)
    workers = running.notifier.service.workers
    await eventually(lambda: all(w.pending == 50 for w in workers), what="50 waiting per channel")
    assert received(http, smtp) == dict.fromkeys(CHANNELS, 0)  # nothing before the interval ends

    clock.advance(60)
    await eventually(lambda: received(http, smtp) == dict.fromkeys(CHANNELS, 1), what="one digest each")
    await eventually(lambda: all(w.counts["sent"] == 50 for w in workers), what="50 records each")
    await running.stop()
    assert received(http, smtp) == dict.fromkeys(CHANNELS, 1)

    gotify = http.on("/gotify/message")[0].json()
    assert gotify["title"] == "LXC AutoScale: 50 scaling events (50 applied)"
    assert "pve1/101 scale-up applied" in gotify["message"] and "… and 10 more" in gotify["message"]
    hook = http.on("/hook")[0].json()
    assert hook["digest"] is True and hook["event_ids"] == [e.event_id for e in burst]
    assert " ".join(smtp.messages[0][1]["Subject"].split()) == gotify["title"]
    for event in (burst[0], burst[-1]):
        record = await record_of(nc, event, "email")
        assert record is not None and record.status == "sent"


async def test_the_allow_list_keeps_notifications_inside_the_listed_networks(
    notifier_url: str, nc: Any, http: HttpEndpoint
) -> None:
    refused_config = notifier_config(webhook=f"{http.base}/hook", allowed_networks=["10.0.0.0/8"])
    running = await start_notifier(notifier_url, refused_config, FakeClock())
    event = scale_event("failed", 1)
    await publish(nc.jetstream(), event)
    await eventually(lambda: running.worker("webhook").counts["failed"] == 1, what="refused")
    await running.stop()
    record = await record_of(nc, event, "webhook")
    assert record is not None and "127.0.0.1 is not in NOTIFIER.allowed_networks" in record.error
    assert http.requests == []

    allowed = notifier_config(webhook=f"{http.base}/hook", allowed_networks=["127.0.0.0/8", "::1/128"])
    running = await start_notifier(notifier_url, allowed, FakeClock())
    await publish(nc.jetstream(), scale_event("failed", 2))
    await eventually(lambda: len(http.on("/hook")) == 1, what="loopback allowed")
    await running.stop()


async def test_poison_on_the_events_stream_is_set_aside_and_the_next_event_goes_out(
    notifier_url: str, nc: Any, http: HttpEndpoint
) -> None:
    running = await start_notifier(notifier_url, notifier_config(webhook=f"{http.base}/hook"), FakeClock())
    await nc.jetstream().publish(subjects.events_subject("pve1", 101), b"\xc1 not msgpack")
    await publish(nc.jetstream(), scale_event("failed", 1))
    await eventually(lambda: len(http.on("/hook")) == 1, what="the good event")
    assert running.worker("webhook").counts["undecodable"] == 1
    await running.stop()


async def test_email_over_implicit_tls_with_login(notifier_url: str, nc: Any, tmp_path: Path) -> None:
    smtp = SmtpEndpoint(tmp_path, security="ssl", user="mailer", password="smtpPassw0rdZ9k")
    try:
        running = await start_notifier(notifier_url, notifier_config(smtp=smtp), FakeClock())
        await publish(nc.jetstream(), scale_event("rejected", 1))
        await eventually(lambda: len(smtp.messages) == 1, what="the mail")
        await running.stop()
    finally:
        smtp.stop()
    login, mail = smtp.messages[0]
    assert login == "mailer" and "rejected" in mail["Subject"]


async def test_a_wrong_smtp_password_fails_for_good_without_retries(
    notifier_url: str, nc: Any, tmp_path: Path
) -> None:
    smtp = SmtpEndpoint(tmp_path, security="starttls", user="mailer", password="another-password")
    try:
        running = await start_notifier(notifier_url, notifier_config(smtp=smtp), FakeClock())
        event = scale_event("failed", 1)
        await publish(nc.jetstream(), event)
        await eventually(lambda: running.worker("email").counts["failed"] == 1, what="given up")
        await running.stop()
    finally:
        smtp.stop()
    record = await record_of(nc, event, "email")
    assert record is not None and record.attempts == 1 and "SMTP 535" in record.error
    assert running.worker("email").deliverer.breaker.state == "closed"  # the server is up
    assert smtp.messages == []


async def test_the_notifier_user_may_not_publish_events_nor_touch_other_consumers(
    shipped_broker: Any, nc: Any
) -> None:
    errors: list[str] = []

    async def on_error(exc: Exception) -> None:
        errors.append(str(exc).lower())

    client = await open_connection(shipped_broker.url_for("notifier"), error_cb=on_error)
    try:
        for subject in (
            subjects.events_subject("pve1", 101),
            f"$JS.API.CONSUMER.DELETE.{subjects.EVENTS_STREAM}.notifier-webhook",
            f"$JS.API.CONSUMER.MSG.NEXT.{subjects.INTENTS_STREAM}.actuator-pve1",
            f"$JS.API.STREAM.PURGE.{subjects.EVENTS_STREAM}",
            "$KV.autoscale_state.pve1.101",
        ):
            before = len(errors)
            await client.publish(subject, b"probe")
            await client.flush(timeout=2)
            for _ in range(50):
                if len(errors) > before:
                    break
                await asyncio.sleep(0.02)
            assert any("permissions violation" in e for e in errors[before:]), subject
    finally:
        await client.close()
