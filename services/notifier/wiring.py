"""Build the notifier from the configuration: which channels are on, their secrets."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.notifier.channels import (
    Channel,
    EmailChannel,
    GotifyChannel,
    HttpSender,
    UptimeKumaChannel,
    WebhookChannel,
)
from services.notifier.delivery import Deliverer
from services.notifier.service import ChannelWorker, NotifierService
from services.notifier.store import DeliveryStore
from shared import subjects
from shared.clock import Clock
from shared.config import AutoscaleConfig, Defaults, NotifierSettings

log = logging.getLogger(__name__)


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def secrets_of(defaults: Defaults) -> tuple[str, ...]:
    """Every value that must never reach a log line: tokens, passwords, and the secret
    parts of URLs (an Uptime Kuma push URL is its own token)."""
    found: list[str] = []
    for value in (defaults.gotify_token, defaults.smtp_password, defaults.webhook_secret):
        if value is not None and value.get_secret_value():
            found.append(value.get_secret_value())
    for url in (_secret(defaults.uptime_kuma_webhook_url), _secret(defaults.webhook_url)):
        if url:
            parts = urlsplit(url)
            found += [url, *(p for p in (parts.path, parts.query, parts.password) if p and len(p) > 1)]
    return tuple(found)


def build_channels(config: AutoscaleConfig, http: HttpSender, clock: Clock) -> list[Channel]:
    """Each channel is on when its keys are set (the original's keys, plus the webhook's)."""
    d = config.defaults
    channels: list[Channel] = []
    gotify_token = _secret(d.gotify_token)
    if d.gotify_url and gotify_token:
        channels.append(GotifyChannel(http, d.gotify_url, token=gotify_token))
    elif d.gotify_url or gotify_token:
        log.warning("gotify needs both gotify_url and gotify_token; channel off",
                    extra={"event": "channel_incomplete", "channel": "gotify"})  # fmt: skip
    if d.smtp_server and d.smtp_to:
        password = _secret(d.smtp_password)
        if d.smtp_username and not password:
            log.warning("smtp_username is set without smtp_password: sending without login",
                        extra={"event": "channel_incomplete", "channel": "email"})  # fmt: skip
        channels.append(
            EmailChannel(
                server=d.smtp_server, port=d.smtp_port, security=d.smtp_security,
                sender=d.smtp_from or d.smtp_username or f"lxc-autoscale@{socket.gethostname()}",
                recipients=list(d.smtp_to), username=d.smtp_username, password=password,
                timeout_s=config.notifier.timeout_s, now=clock.now, ca_file=d.smtp_ca_file,
            )
        )  # fmt: skip
    kuma = _secret(d.uptime_kuma_webhook_url)
    if kuma:
        channels.append(UptimeKumaChannel(http, kuma))
    webhook = _secret(d.webhook_url)
    if webhook:
        channels.append(
            WebhookChannel(http, webhook, secret=_secret(d.webhook_secret),
                           signature_header=config.notifier.webhook_signature_header)
        )  # fmt: skip
    return channels


def http_client(settings: NotifierSettings) -> httpx.AsyncClient:
    # trust_env=False: no proxy variables, no .netrc; redirects are not followed, so a
    # notification cannot be bounced to an address the allow-list would refuse.
    return httpx.AsyncClient(timeout=settings.timeout_s, trust_env=False, follow_redirects=False)


@dataclass
class Notifier:
    service: NotifierService
    http: httpx.AsyncClient

    async def close(self) -> None:
        await self.http.aclose()


async def build_notifier(
    js: Any, config: AutoscaleConfig, clock: Clock, **deliverer_options: Any
) -> Notifier:
    """Bind the delivery records bucket (made by `lxc-autoscale setup`) and one worker per channel."""
    kv = await js.key_value(subjects.NOTIFIER_BUCKET)
    client = http_client(config.notifier)
    channels = build_channels(config, HttpSender(client), clock)
    secrets = secrets_of(config.defaults)
    store = DeliveryStore(kv)
    workers = [
        ChannelWorker(
            js=js,
            deliverer=Deliverer(channel, config.notifier, clock, secrets, **deliverer_options),
            store=store,
            settings=config.notifier,
            clock=clock,
        )
        for channel in channels
    ]
    return Notifier(NotifierService(workers), client)
