"""Endpoint checks and safe display. Pure.

Private and loopback addresses are allowed by default (a home lab's Gotify lives
on 192.168.x.x); an allow-list of networks narrows where notifications may go.
URLs carry tokens (an Uptime Kuma push URL is its own secret), so logs and
records show only scheme://host:port, and error texts have every secret removed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from shared.logs import REDACTED, mask_secrets
from shared.validation import sanitize

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EndpointRefused(ValueError):
    """The endpoint is outside the allow-list (a permanent failure, never retried)."""


def display(url: str) -> str:
    """scheme://host:port of a URL, nothing that could hold a token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def host_of(url: str) -> str:
    host = urlsplit(url).hostname
    if not host:
        raise EndpointRefused(f"{display(url)}: the URL has no host")
    return host


def check_addresses(endpoint: str, addresses: Iterable[str], allowed: Sequence[IpNetwork]) -> None:
    """Every address the endpoint's host resolves to must be inside an allowed network."""
    if not allowed:
        return
    resolved = [ipaddress.ip_address(a.split("%", 1)[0]) for a in addresses]
    if not resolved:
        raise EndpointRefused(f"{endpoint}: the host resolves to no address")
    for address in resolved:
        if not any(address in network for network in allowed):
            raise EndpointRefused(f"{endpoint}: {address} is not in NOTIFIER.allowed_networks")


def redact(text: str, secrets: Iterable[str]) -> str:
    """Remove every known secret (tokens, passwords, secret URLs) from outside text."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return mask_secrets(sanitize(text, limit=1000))
