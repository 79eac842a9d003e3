"""The notifier's pure core: selection, messages, payloads, breaker, digest batch,
endpoint checks, records. No broker, no network, no clock."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notifier import payloads
from services.notifier.breaker import Breaker
from services.notifier.digest import Batch
from services.notifier.endpoints import EndpointRefused, check_addresses, display, redact
from services.notifier.messages import for_digest, for_event
from services.notifier.records import DeliveryRecord, record_key
from services.notifier.selection import too_old, wanted
from shared.config import NotifierSettings, parse_config
from shared.models import ResourceSize
from tests.notifier_support import REASON, scale_event
from tests.support import T0, imported_modules

# ------------------------------------------------------------------ selection

DOWN = {"after": ResourceSize(cores=1, memory_mb=1024), "target": ResourceSize(cores=1, memory_mb=1024)}


@pytest.mark.parametrize(
    ("outcome", "overrides", "rules", "expected"),
    [
        pytest.param("applied", {}, {}, True, id="applied-scale-up-by-default"),
        pytest.param("applied", DOWN, {}, True, id="applied-scale-down-by-default"),
        pytest.param("failed", {}, {}, True, id="failed-by-default"),
        pytest.param("rejected", {}, {}, True, id="rejected-by-default"),
        pytest.param("skipped", {}, {}, False, id="skipped-not-by-default"),
        pytest.param("applied", DOWN, {"directions": ["scale-up"]}, False, id="scale-down-filtered"),
        pytest.param("failed", {}, {"directions": ["scale-up"]}, True, id="direction-only-for-applied"),
        pytest.param("applied", {}, {"outcomes": ["failed"]}, False, id="only-failures"),
        pytest.param("skipped", {}, {"outcomes": ["skipped"]}, True, id="skipped-when-asked"),
    ],
)
def test_selection_by_outcome_and_direction(
    outcome: str, overrides: dict[str, object], rules: dict[str, object], expected: bool
) -> None:
    assert wanted(scale_event(outcome, **overrides), NotifierSettings(**rules)) is expected


def test_an_event_older_than_the_maximum_age_is_too_old() -> None:
    rules = NotifierSettings(max_event_age_s=3600)
    event = scale_event()
    assert not too_old(event, (T0 + timedelta(seconds=3599)).timestamp(), rules)
    assert too_old(event, (T0 + timedelta(seconds=3601)).timestamp(), rules)


# ------------------------------------------------------------------ messages


def test_a_message_names_node_container_sizes_and_reason() -> None:
    note = for_event(scale_event("applied"))
    assert note.title == "LXC AutoScale: pve1/101 scale-up applied: 2 cores, 1024 MB → 3 cores, 1024 MB"
    assert "Node: pve1\nContainer: 101\n" in note.body
    assert f"Reason: {REASON.summary}" in note.body
    assert (note.priority, note.status) == (5, "up")


def test_a_failure_says_what_was_not_reached_and_why_and_is_down_for_uptime_kuma() -> None:
    note = for_event(scale_event("failed"))
    assert "2 cores, 1024 MB → 3 cores, 1024 MB (not applied)" in note.body
    assert "Detail: pct set 101 exited 255" in note.body
    assert (note.priority, note.status) == (8, "down")


def test_outside_text_cannot_smuggle_control_characters_into_a_message() -> None:
    note = for_event(scale_event("failed", message="locked\x1b[31m\r\nFAKE: line"))
    assert "\x1b" not in note.body and "\r" not in note.body
    assert "FAKE: line" not in note.body.splitlines()


def test_a_digest_counts_by_outcome_and_lists_at_most_40_events() -> None:
    events = [scale_event("applied", n) for n in range(45)] + [scale_event("failed", 99)]
    note = for_digest(events)
    assert note.title == "LXC AutoScale: 46 scaling events (45 applied, 1 failed)"
    assert note.body.count("\n- ") == 40 and note.body.endswith("… and 6 more")
    assert note.priority == 8 and note.status == "down"
    assert len(note.event_ids) == 46 and note.key.startswith("digest-")


# ------------------------------------------------------------------ payloads


def test_gotify_request_carries_the_token_in_its_header_and_priority_in_the_body() -> None:
    request = payloads.gotify(for_event(scale_event("rejected")), "http://192.168.1.5:8080/", "tok")
    assert (request.method, request.url) == ("POST", "http://192.168.1.5:8080/message")
    assert request.headers["X-Gotify-Key"] == "tok"
    assert json.loads(request.body)["priority"] == 7


def test_uptime_kuma_push_keeps_the_urls_own_parameters_and_sets_status_and_msg() -> None:
    push_url = "http://kuma/api/push/abc?ping=&status=up"
    request = payloads.uptime_kuma(for_event(scale_event("failed")), push_url)
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    assert request.method == "GET" and urlsplit(request.url).path == "/api/push/abc"
    assert query["status"] == ["down"] and query["ping"] == [""]
    assert query["msg"][0].startswith("LXC AutoScale: pve1/101 failed")


def test_webhook_signature_is_the_hmac_of_the_exact_body() -> None:
    request = payloads.webhook(for_event(scale_event()), "http://hook", "s3cret", "X-Sig")
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Sig"] == f"sha256={expected}"
    assert "X-Sig" not in payloads.webhook(for_event(scale_event()), "http://hook", None, "X-Sig").headers


def test_the_same_notification_gets_the_same_message_id() -> None:
    first = payloads.email(for_event(scale_event()), "a@x", ["b@x"], T0)
    again = payloads.email(for_event(scale_event()), "a@x", ["b@x"], T0 + timedelta(hours=1))
    other = payloads.email(for_event(scale_event(n=2)), "a@x", ["b@x"], T0)
    assert first["Message-ID"] == again["Message-ID"] != other["Message-ID"]


# ------------------------------------------------------------------ breaker


def test_the_breaker_opens_after_n_failures_in_a_row_and_a_success_resets_the_count() -> None:
    breaker = Breaker(failure_threshold=3, reset_after_s=60)
    breaker = breaker.failed(0).failed(1).succeeded().failed(2).failed(3)
    assert breaker.state == "closed"
    breaker = breaker.failed(4)
    assert breaker.state == "open" and not breaker.allows(5) and breaker.retry_in(5) == 59


def test_after_the_pause_one_trial_goes_out_success_closes_failure_reopens() -> None:
    opened = Breaker(failure_threshold=1, reset_after_s=60).failed(100)
    assert not opened.allows(159) and opened.allows(160)
    trial = opened.begin(160)
    assert trial.state == "half-open" and not trial.allows(160)  # one trial at a time
    assert trial.succeeded().state == "closed"
    reopened = trial.failed(161)
    assert reopened.state == "open" and not reopened.allows(220) and reopened.allows(221)
    assert trial.abandoned().allows(162)  # a cancelled trial frees the slot


# ------------------------------------------------------------------ digest batch


def test_a_batch_is_due_an_interval_after_its_first_item_or_when_full() -> None:
    batch: Batch[int] = Batch(interval_s=60, max_items=3)
    assert not batch.due(0)
    batch.add(1, now=10)
    batch.add(2, now=50)
    assert not batch.due(69) and batch.due(70)
    assert batch.take() == [1, 2] and not batch.due(1000)
    for n in range(3):
        batch.add(n, now=200)
    assert batch.due(200)


# ------------------------------------------------------------------ endpoints


def test_display_shows_no_token_from_a_url() -> None:
    assert display("https://user:pw@kuma.lan:3001/api/push/SECRET?status=up") == "https://kuma.lan:3001"


def test_any_address_is_allowed_without_a_list_and_only_listed_ones_with_it() -> None:
    check_addresses("e", ["127.0.0.1", "192.168.1.5"], [])
    lan = [ipaddress.ip_network("192.168.0.0/16")]
    check_addresses("e", ["192.168.1.5"], lan)
    with pytest.raises(EndpointRefused, match=r"127\.0\.0\.1 is not in NOTIFIER\.allowed_networks"):
        check_addresses("e", ["192.168.1.5", "127.0.0.1"], lan)
    with pytest.raises(EndpointRefused, match="no address"):
        check_addresses("e", [], lan)


def test_redact_removes_known_secrets_and_secret_looking_values() -> None:
    text = "GET http://k/api/push/KUMATOKEN?status=up failed; password=hunter2 token tok123"
    cleaned = redact(text, ["/api/push/KUMATOKEN", "tok123"])
    assert "KUMATOKEN" not in cleaned and "hunter2" not in cleaned and "tok123" not in cleaned


# ------------------------------------------------------------------ records and config


def test_a_record_key_is_a_valid_kv_key_per_channel() -> None:
    key = record_key("abc-failed-pct:exit 255/x", "email")
    assert key.startswith("email.") and all(c.isalnum() or c in "._-" for c in key)
    assert record_key("abc", "email") != record_key("abc", "webhook")
    record = DeliveryRecord(event_id="e", channel="email", status="sent", at=T0, attempts=1)
    assert DeliveryRecord.decode(record.encode()) == record


def test_the_originals_keys_and_overrides_configure_the_channels() -> None:
    config = parse_config(
        {"DEFAULT": {"gotify_url": "http://192.168.1.5", "smtp_to": ["a@x"], "smtp_port": 465},
         "NOTIFIER": {"digest_interval_s": 300, "allowed_networks": ["192.168.0.0/16"]}},
        env={"LXC_AUTOSCALE_GOTIFY_TOKEN": "gTok9", "LXC_AUTOSCALE_SMTP_PASSWORD": "sPw7",
             "LXC_AUTOSCALE_UPTIME_KUMA_WEBHOOK": "http://k/api/push/x",
             "LXC_AUTOSCALE_WEBHOOK_SECRET": "0123", "LXC_AUTOSCALE_SMTP_SECURITY": "ssl"},
    )  # fmt: skip
    d = config.defaults
    assert d.gotify_token is not None and d.gotify_token.get_secret_value() == "gTok9"
    assert d.smtp_password is not None and d.smtp_password.get_secret_value() == "sPw7"
    assert d.uptime_kuma_webhook_url is not None
    assert d.webhook_secret is not None and d.webhook_secret.get_secret_value() == "0123"  # not 123
    assert d.smtp_security == "ssl" and d.smtp_port == 465
    assert config.notifier.digest_interval_s == 300
    assert "gTok9" not in repr(config) and "sPw7" not in repr(config)


def test_a_bad_notifier_key_is_reported_with_its_name() -> None:
    from shared.config import ConfigError

    with pytest.raises(ConfigError, match=r"NOTIFIER\.outcomes"):
        parse_config({"NOTIFIER": {"outcomes": ["exploded"]}}, env={})


# ------------------------------------------------------------------ import rule

PURE = ["selection", "messages", "payloads", "breaker", "digest", "endpoints", "records"]
FORBIDDEN = {"asyncio", "nats", "os", "time", "socket", "smtplib", "httpx", "tenacity", "shared.clock"}
ROOT = Path(__file__).resolve().parents[2] / "services" / "notifier"


@pytest.mark.parametrize("module", PURE)
def test_the_pure_modules_do_no_io_and_read_no_clock(module: str) -> None:
    imported = imported_modules((ROOT / f"{module}.py").read_text())
    assert {n for n in imported if n in FORBIDDEN or n.split(".")[0] in FORBIDDEN} == set()


def test_the_notifier_imports_only_shared() -> None:
    for path in ROOT.rglob("*.py"):
        services = {n for n in imported_modules(path.read_text()) if n.startswith("services.")}
        assert all(n.startswith("services.notifier") for n in services), path


async def test_a_notifier_without_channels_stays_up_until_stopped() -> None:
    """compose and systemd restart a service that exits; an idle notifier must wait instead."""
    import asyncio

    from services.notifier.service import NotifierService

    stop = asyncio.Event()
    running = asyncio.create_task(NotifierService(workers=[]).run(stop))
    await asyncio.sleep(0.2)
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, 1.0)
