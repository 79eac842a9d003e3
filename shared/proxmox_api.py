"""A small blocking client for the Proxmox VE REST API (`/api2/json`), stdlib only.

- Auth: an API token, sent as `Authorization: PVEAPIToken=<user>@<realm>!<name>=<secret>`.
  The secret lives in a `SecretStr` and is never part of a repr, log line or error.
- TLS: verified against a CA file (Proxmox's `/etc/pve/pve-root-ca.pem`) or the system
  store, and/or pinned to the server certificate's SHA-256 fingerprint. A pinned
  fingerprint is checked right after the handshake, before the token is sent. `insecure`
  turns verification off and must be asked for explicitly; callers warn about it.
- Replies: Proxmox's envelope `{"data": …}`; on error the HTTP status, the message
  (pveproxy puts it in the reason phrase and in `message`) and per-parameter `errors`.

One connection per request: a call is a handful of milliseconds on a LAN, the
actuator makes a few per intent, and a fresh connection never hands out a dead socket.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from pydantic import SecretStr

from shared.config import ProxmoxApiSettings
from shared.validation import check_host_name

API_PREFIX = "/api2/json"
_MAX_REPLY = 4 * 1024 * 1024


class ApiUnreachable(Exception):
    """No HTTP answer: connection refused or reset, name not resolved (worth retrying)."""


class ApiTimeout(Exception):
    """The server did not answer within the time limit."""


class ApiTlsRefused(Exception):
    """The server's certificate failed verification or its pin: never retried, never sent the token."""


@dataclass(frozen=True)
class ApiEndpoint:
    host: str
    token_id: str  # user@realm!tokenname
    secret: SecretStr = field(repr=False)
    port: int = 8006
    ca_file: Path | None = None
    fingerprint: str | None = None  # SHA-256, hex, colons optional
    insecure: bool = False

    def __post_init__(self) -> None:
        check_host_name(self.host)
        user, sep, name = self.token_id.partition("!")
        if not sep or "@" not in user or not name:
            raise ValueError(f"API token id {self.token_id!r} is not user@realm!tokenname")
        if self.fingerprint is not None and len(normalize_fingerprint(self.fingerprint)) != 64:
            raise ValueError("fingerprint must be a SHA-256 digest: 64 hex digits, colons allowed")

    def describe(self) -> str:
        """For logs: where and as whom, never the secret."""
        return f"https://{self.host}:{self.port} as {self.token_id}"


def normalize_fingerprint(text: str) -> str:
    return text.replace(":", "").strip().lower()


@dataclass(frozen=True)
class ApiReply:
    status: int
    reason: str
    data: Any = None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error_text(self) -> str:
        """Proxmox's own wording: `<status> <message>` then one `param: error` line each."""
        lines = [f"{self.status} {self.reason}".strip()]
        lines.extend(f"{key}: {self.errors[key].strip()}" for key in sorted(self.errors))
        return "\n".join(lines)


class ProxmoxApi:
    def __init__(self, endpoint: ApiEndpoint) -> None:
        self.endpoint = endpoint
        self._context = _tls_context(endpoint)
        self._pin = normalize_fingerprint(endpoint.fingerprint) if endpoint.fingerprint else None

    def request(
        self, method: str, path: str, params: dict[str, str] | None = None, *, timeout_s: float = 10.0
    ) -> ApiReply:
        """One call; `path` below /api2/json, e.g. `/nodes/pve1/lxc/101/config`."""
        target = API_PREFIX + quote(path)
        body: bytes | None = None  # bytes: http.client then sends headers and body in one write
        token = f"{self.endpoint.token_id}={self.endpoint.secret.get_secret_value()}"
        headers = {
            "Authorization": f"PVEAPIToken={token}",
            "Accept": "application/json",
        }
        if params and method in ("GET", "DELETE"):
            target += "?" + urlencode(params)
        elif params:
            body = urlencode(params).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPSConnection(
            self.endpoint.host, self.endpoint.port, context=self._context, timeout=max(timeout_s, 0.05)
        )
        try:
            self._connect(connection)
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            raw = response.read(_MAX_REPLY)
        except ApiTlsRefused:
            raise
        except ssl.SSLCertVerificationError as exc:
            where = self.endpoint.host
            raise ApiTlsRefused(f"TLS certificate of {where} not trusted: {exc.verify_message}") from None
        except TimeoutError:
            where = f"{self.endpoint.host}:{self.endpoint.port}"
            raise ApiTimeout(f"no answer from {where} in {timeout_s:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise ApiUnreachable(f"{type(exc).__name__}: {exc}"[:300]) from None
        finally:
            connection.close()
        return _reply(response.status, response.reason, raw)

    def _connect(self, connection: http.client.HTTPSConnection) -> None:
        connection.connect()
        if self._pin is None:
            return
        sock = connection.sock
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        seen = hashlib.sha256(der or b"").hexdigest()
        if not hmac.compare_digest(seen, self._pin):
            connection.close()
            raise ApiTlsRefused(
                f"TLS certificate of {self.endpoint.host}:{self.endpoint.port} has SHA-256 fingerprint "
                f"{_colons(seen)}, not the pinned {_colons(self._pin)}; refusing to send the token"
            )


def _tls_context(endpoint: ApiEndpoint) -> ssl.SSLContext:
    if endpoint.insecure or (endpoint.fingerprint and endpoint.ca_file is None):
        # No chain check: either the operator said so, or the pin (checked per connection) replaces it.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=str(endpoint.ca_file) if endpoint.ca_file else None)


def _colons(hexdigest: str) -> str:
    upper = hexdigest.upper()
    return ":".join(upper[i : i + 2] for i in range(0, len(upper), 2))


def _reply(status: int, reason: str, raw: bytes) -> ApiReply:
    try:
        document = json.loads(raw) if raw else {}
    except ValueError:
        document = {}
    if not isinstance(document, dict):
        document = {}
    errors = document.get("errors")
    message = document.get("message")
    if isinstance(message, str) and message.strip() and status >= 400:
        reason = " ".join(message.split())
    return ApiReply(
        status=status,
        reason=reason,
        data=document.get("data"),
        errors={str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {},
    )


PVE_ROOT_CA = Path("/etc/pve/pve-root-ca.pem")


def endpoint_from_settings(settings: ProxmoxApiSettings, host: str | None = None) -> ApiEndpoint:
    """The endpoint `DEFAULT.proxmox_api` describes; ValueError names what is missing."""
    if not settings.user or not settings.token_name:
        raise ValueError("set proxmox_api.user and proxmox_api.token_name to use the Proxmox API")
    secret = settings.token_value
    if secret is None and settings.token_value_file is not None:
        try:
            text = settings.token_value_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"cannot read proxmox_api.token_value_file: {exc.strerror}") from None
        secret = SecretStr(text) if text else None
    if secret is None or not secret.get_secret_value():
        raise ValueError(
            "no API token secret: set proxmox_api.token_value_file, or LXC_AUTOSCALE_PROXMOX_API_TOKEN_VALUE"
        )
    ca_file = settings.ca_file
    if ca_file is None and settings.verify_ssl and not settings.fingerprint and PVE_ROOT_CA.is_file():
        ca_file = PVE_ROOT_CA  # on a Proxmox node the cluster CA signs every node's certificate
    if ca_file is not None and settings.verify_ssl and not ca_file.is_file():
        raise ValueError(f"proxmox_api.ca_file {ca_file} does not exist")
    return ApiEndpoint(
        host=settings.host or host or "127.0.0.1",
        port=settings.port,
        token_id=f"{settings.user}!{settings.token_name}",
        secret=secret,
        ca_file=ca_file if settings.verify_ssl else None,
        fingerprint=settings.fingerprint if settings.verify_ssl else None,
        insecure=not settings.verify_ssl,
    )
