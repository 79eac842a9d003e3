"""What goes on the wire for each channel, built from a Notification. Pure.

The shell (channels.py) only sends what these functions return, so the exact
requests are unit-tested without a network.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.notifier.messages import Notification

# Uptime Kuma keeps the push message short.
KUMA_MSG_LIMIT = 250


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def gotify(notification: Notification, base_url: str, token: str) -> HttpRequest:
    """Gotify's message API: POST {url}/message with the application token in X-Gotify-Key."""
    body = json.dumps(
        {"title": notification.title, "message": notification.body, "priority": notification.priority}
    ).encode()
    return HttpRequest(
        "POST",
        base_url.rstrip("/") + "/message",
        {"X-Gotify-Key": token, "Content-Type": "application/json"},
        body,
    )


def uptime_kuma(notification: Notification, push_url: str) -> HttpRequest:
    """An Uptime Kuma push monitor: GET the push URL with `status` (up/down) and `msg`."""
    parts = urlsplit(push_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("status", "msg")]
    query += [("status", notification.status), ("msg", notification.title[:KUMA_MSG_LIMIT])]
    return HttpRequest("GET", urlunsplit(parts._replace(query=urlencode(query))))


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes under the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook(notification: Notification, url: str, secret: str | None, signature_header: str) -> HttpRequest:
    """A JSON body with the message and the events themselves; signed when a secret is set.

    X-Autoscale-Delivery names the notification, so a receiver can drop a repeat."""
    body = json.dumps(
        {
            "title": notification.title,
            "message": notification.body,
            "priority": notification.priority,
            "status": notification.status,
            "digest": len(notification.event_ids) > 1,
            "event_ids": list(notification.event_ids),
            "events": list(notification.events),
        },
        sort_keys=True,
    ).encode()
    headers = {"Content-Type": "application/json", "X-Autoscale-Delivery": notification.key}
    if secret:
        headers[signature_header] = signature(secret, body)
    return HttpRequest("POST", url, headers, body)


def email(notification: Notification, sender: str, recipients: list[str], now: datetime) -> EmailMessage:
    """Plain text; the Message-ID comes from the events, so a resent mail is recognisably the same."""
    message = EmailMessage()
    message["Subject"] = notification.title
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(now)
    digest = hashlib.sha256(notification.key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@lxc-autoscale>"
    message.set_content(notification.body)
    return message
