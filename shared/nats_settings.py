"""How a service reaches NATS: URL, credentials, TLS. One connection per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from nats.aio.client import Client
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from shared.observability import NATS_CONNECTED, READINESS
from shared.startup import StoppedWaiting

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
# Environment variable -> setting; applied over the file by `shared.service_config.resolve`.
ENV_VARIABLES = {
    "NATS_URL": "url",
    "NATS_USER": "user",
    "NATS_PASSWORD": "password",
    "NATS_TOKEN": "token",
    "NATS_NKEY_SEED_FILE": "nkey_seed_file",
    "NATS_CREDS_FILE": "creds_file",
    "NATS_TLS_CA_FILE": "tls_ca_file",
    "NATS_TLS_CERT_FILE": "tls_cert_file",
    "NATS_TLS_KEY_FILE": "tls_key_file",
    "NATS_TLS_HOSTNAME": "tls_hostname",
    "NATS_REPLICAS": "replicas",
    "NATS_INBOX_PREFIX": "inbox_prefix",
}

# Replies (request/reply, JetStream acks and API answers, KV reads and watches) come
# to the requester's inbox. Each user gets its own prefix, `_INBOX.<user>`, and the
# shipped permissions let a user subscribe only there (docs/security.md), so no
# credential reads another user's replies. Still under `_INBOX.`, so permission files
# that allow `_INBOX.>` keep working while a deployment upgrades.
INBOX_ROOT = "_INBOX"
_TOKEN = re.compile(r"[^.\s*>]+")  # one subject token: no dot, space or wildcard
_PREFIX = re.compile(r"[^.\s*>]+(\.[^.\s*>]+)*")


def inbox_prefix_for(user: str | None) -> str:
    """The inbox prefix of a client signed in as `user`: `_INBOX.<user>`, or nats-py's
    `_INBOX` for a client without a user name (no auth, token)."""
    if not user:
        return INBOX_ROOT
    if not _TOKEN.fullmatch(user):
        raise ValueError(
            f"NATS user {user!r} cannot name an inbox (a dot, space, * or >): set NATS_INBOX_PREFIX"
        )
    return f"{INBOX_ROOT}.{user}"


def url_user(url: str) -> str | None:
    """The user name in the first of `url`'s comma-separated URLs (`nats://user:pw@host`)."""
    username = urlsplit(url.split(",")[0].strip()).username
    return unquote(username) if username else None


_URL_CREDENTIALS = re.compile(r"(?<=://)[^,\s]*@")  # userinfo up to its last @


def redact_url(url: str) -> str:
    """The URL(s) without the `user:password@` part, for logs and messages."""
    return _URL_CREDENTIALS.sub("***@", url)


class NatsSettings(BaseModel):
    """Connection settings; secrets are SecretStr so they never print."""

    model_config = ConfigDict(extra="forbid")

    url: str = DEFAULT_URL
    user: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    nkey_seed_file: Path | None = None
    creds_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_hostname: str | None = None
    connect_timeout_s: float = Field(default=2.0, gt=0)
    name: str = "lxc-autoscale"
    # Copies `setup` keeps of every stream and bucket: 1 on a single server, 3 on a
    # three-server cluster (so one server may go); JetStream allows at most 5.
    replicas: int = Field(default=1, ge=1, le=5)
    # Where this client's replies arrive; None: `_INBOX.<user>` from `user` or the URL.
    # Set it (to what the user's permissions allow) for nkey or creds users.
    inbox_prefix: str | None = None

    @field_validator("inbox_prefix")
    @classmethod
    def _check_inbox_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _PREFIX.fullmatch(value):
            raise ValueError(f"inbox prefix {value!r} must be subject tokens without wildcards or spaces")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        for part in value.split(","):
            if not part.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                shown = redact_url(part.strip())
                raise ValueError(f"NATS URL {shown!r} must start with nats://, tls://, ws:// or wss://")
        return value

    @model_validator(mode="after")
    def _check_user_names_an_inbox(self) -> NatsSettings:
        self.reply_prefix  # noqa: B018 - raises for a user name that cannot be a subject token
        return self

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

    @property
    def reply_prefix(self) -> str:
        """The inbox prefix this client uses: the set one, else its user's own."""
        if self.inbox_prefix:
            return self.inbox_prefix
        return inbox_prefix_for(self.user or url_user(self.url))

    @classmethod
    def from_env(cls, base: NatsSettings | None, env: Mapping[str, str]) -> NatsSettings:
        """`base` with the deployment's overrides from `env`: NATS_URL, NATS_USER, NATS_PASSWORD, ..."""
        values = (base or cls()).model_dump()
        for variable, field in ENV_VARIABLES.items():
            if env.get(variable):
                values[field] = env[variable]
        return cls.model_validate(values)

    def tls_context(self) -> ssl.SSLContext | None:
        if not (self.tls_ca_file or self.tls_cert_file or self.url.startswith("tls://")):
            return None
        context = ssl.create_default_context(cafile=str(self.tls_ca_file) if self.tls_ca_file else None)
        if self.tls_cert_file:
            context.load_cert_chain(
                str(self.tls_cert_file), str(self.tls_key_file) if self.tls_key_file else None
            )
        return context

    def connect_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "servers": [u.strip() for u in self.url.split(",")],
            "name": self.name,
            "connect_timeout": self.connect_timeout_s,
            # Keep trying for ever: a broker restart must not kill a service.
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 1,
            "allow_reconnect": True,
            "inbox_prefix": self.reply_prefix,
        }
        if self.user:
            options["user"] = self.user
        if self.password:
            options["password"] = self.password.get_secret_value()
        if self.token:
            options["token"] = self.token.get_secret_value()
        if self.nkey_seed_file:
            options["nkeys_seed"] = str(self.nkey_seed_file)
        if self.creds_file:
            options["user_credentials"] = str(self.creds_file)
        tls = self.tls_context()
        if tls is not None:
            options["tls"] = tls
            if self.tls_hostname:
                options["tls_hostname"] = self.tls_hostname
        return options


async def open_connection(target: NatsSettings | str | Sequence[str], **options: Any) -> Client:
    """A NATS connection with the inbox rule above; every client of the project opens
    its connection here. `target` is a service's settings (their options: credentials,
    TLS, reconnecting for ever) or, for tools, tests and benchmarks, URL(s) with the
    user in them or in `options["user"]` (nats-py's defaults). `options` go to
    nats.connect over those."""
    import nats

    if isinstance(target, NatsSettings):
        base = target.connect_options()
    else:
        url = target if isinstance(target, str) else ",".join(target)
        servers = [u.strip() for u in url.split(",")]
        prefix = NatsSettings(url=url, user=options.get("user")).reply_prefix
        base = {"servers": servers, "inbox_prefix": prefix}
    return await nats.connect(**{**base, **options})


TOOL_CONNECT_WAIT_S = 15.0  # how long a command line tool waits for the broker


class NatsUnreachable(ConnectionError):
    """The broker did not answer the first connect within the caller's limit."""


async def connect(
    settings: NatsSettings,
    *,
    service: str,
    stop: asyncio.Event | None = None,
    give_up_after_s: float | None = None,
) -> Client:
    """Open the process's one NATS connection, logging disconnects and reconnects.

    The client retries for ever, the first connect too, so a service started before its
    broker waits for it; `stop` (a service's SIGTERM) ends that wait with StoppedWaiting,
    and `give_up_after_s` (a command line tool) with NatsUnreachable, instead of hanging."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc, extra={"event": "nats_error"})

    async def on_disconnect() -> None:
        READINESS.mark(NATS_CONNECTED, False)
        log.warning("disconnected from NATS, reconnecting", extra={"event": "nats_disconnected"})

    async def on_reconnect() -> None:
        READINESS.mark(NATS_CONNECTED, True)
        log.info("reconnected to NATS", extra={"event": "nats_reconnected"})

    opening = asyncio.ensure_future(
        open_connection(
            settings,
            name=f"{settings.name}-{service}",
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
    )
    stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
    waits: set[asyncio.Future[Any]] = {opening} if stopping is None else {opening, stopping}
    try:
        await asyncio.wait(waits, timeout=give_up_after_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stopping is not None:
            stopping.cancel()
    if not opening.done():
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await opening
        if stop is not None and stop.is_set():
            raise StoppedWaiting(f"{service} stopped before NATS answered")
        raise NatsUnreachable(
            f"NATS at {settings.safe_url} did not answer within {give_up_after_s:g} s; "
            "is the broker running and NATS.url right?"
        )
    nc = opening.result()
    READINESS.mark(NATS_CONNECTED, True)
    return nc
