"""The channels' I/O: HTTP (Gotify, Uptime Kuma, webhook) through one httpx client,
e-mail through smtplib in a worker thread. Each raises TransientError (worth a retry:
connection refused, timeout, 5xx, 429, SMTP 4xx) or PermanentError (401, 404, SMTP 5xx,
a refused login): the retry policy is decided from the type, not from text."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, Protocol

import httpx

from services.notifier import payloads
from services.notifier.endpoints import display
from services.notifier.messages import Notification


class TransientError(Exception):
    """The endpoint may accept the same message later."""


class PermanentError(Exception):
    """The endpoint refused the message; sending it again will not help."""


class Channel(Protocol):
    name: str

    @property
    def endpoint(self) -> str:
        """scheme://host:port, safe to log."""
        ...

    @property
    def host(self) -> str:
        """What the allow-list checks."""
        ...

    async def send(self, notification: Notification) -> None: ...


@dataclass
class HttpSender:
    client: httpx.AsyncClient

    async def execute(self, request: payloads.HttpRequest) -> None:
        try:
            response = await self.client.request(
                request.method, request.url, headers=request.headers, content=request.body
            )
        except httpx.TransportError as exc:  # refused, reset, timeout, TLS failure
            raise TransientError(f"{type(exc).__name__}: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"HTTP {response.status_code}")
        if response.status_code >= 300:
            raise PermanentError(f"HTTP {response.status_code}")


@dataclass
class _HttpChannel:
    http: HttpSender
    url: str

    @property
    def endpoint(self) -> str:
        return display(self.url)

    @property
    def host(self) -> str:
        return httpx.URL(self.url).host


@dataclass
class GotifyChannel(_HttpChannel):
    token: str = ""
    name: str = "gotify"

    async def send(self, notification: Notification) -> None:
        await self.http.execute(payloads.gotify(notification, self.url, self.token))


@dataclass
class UptimeKumaChannel(_HttpChannel):
    """`url` is the monitor's push URL (which is its own secret)."""

    name: str = "uptime-kuma"

    async def send(self, notification: Notification) -> None:
        await self.http.execute(payloads.uptime_kuma(notification, self.url))


@dataclass
class WebhookChannel(_HttpChannel):
    secret: str | None = None
    signature_header: str = "X-Autoscale-Signature"
    name: str = "webhook"

    async def send(self, notification: Notification) -> None:
        request = payloads.webhook(notification, self.url, self.secret, self.signature_header)
        await self.http.execute(request)


@dataclass
class EmailChannel:
    server: str
    port: int
    security: Literal["starttls", "ssl", "none"]
    sender: str
    recipients: list[str]
    username: str | None
    password: str | None
    timeout_s: float
    now: Callable[[], datetime]
    ca_file: Path | None = None
    name: str = "email"

    @property
    def endpoint(self) -> str:
        return f"smtp://{self.server}:{self.port}"

    @property
    def host(self) -> str:
        return self.server

    async def send(self, notification: Notification) -> None:
        message = payloads.email(notification, self.sender, self.recipients, self.now())
        try:
            await asyncio.to_thread(self._send, message)
        except smtplib.SMTPResponseException as exc:
            kind = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
            raise kind(f"SMTP {exc.smtp_code}") from None
        except smtplib.SMTPRecipientsRefused:
            raise PermanentError("SMTP: every recipient was refused") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise PermanentError(f"SMTP: {exc}") from None
        except (OSError, smtplib.SMTPException) as exc:  # refused, timeout, dropped, TLS
            raise TransientError(f"{type(exc).__name__}: {exc}") from None

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)

    def _send(self, message: EmailMessage) -> None:
        if self.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.server, self.port, timeout=self.timeout_s, context=self._tls()
            )
        else:
            smtp = smtplib.SMTP(self.server, self.port, timeout=self.timeout_s)
        with smtp:
            if self.security == "starttls":
                smtp.starttls(context=self._tls())
            if self.username and self.password:
                smtp.login(self.username, self.password)
            smtp.send_message(message)
