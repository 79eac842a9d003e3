"""How a service reaches NATS: URL, credentials, TLS. One connection per process."""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nats.aio.client import Client
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from shared.observability import NATS_CONNECTED, READINESS

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
}


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

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        for part in value.split(","):
            if not part.strip().startswith(("nats://", "tls://", "ws://", "wss://")):
                shown = redact_url(part.strip())
                raise ValueError(f"NATS URL {shown!r} must start with nats://, tls://, ws:// or wss://")
        return value

    @property
    def safe_url(self) -> str:
        return redact_url(self.url)

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
        context = ssl.create_default_context(
            cafile=str(self.tls_ca_file) if self.tls_ca_file else None
        )
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


async def connect(settings: NatsSettings, *, service: str) -> Client:
    """Open the process's one NATS connection, logging disconnects and reconnects."""
    import nats

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc, extra={"event": "nats_error"})

    async def on_disconnect() -> None:
        READINESS.mark(NATS_CONNECTED, False)
        log.warning("disconnected from NATS, reconnecting", extra={"event": "nats_disconnected"})

    async def on_reconnect() -> None:
        READINESS.mark(NATS_CONNECTED, True)
        log.info("reconnected to NATS", extra={"event": "nats_reconnected"})

    options = settings.connect_options()
    options["name"] = f"{settings.name}-{service}"
    nc = await nats.connect(
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        **options,
    )
    READINESS.mark(NATS_CONNECTED, True)
    return nc
