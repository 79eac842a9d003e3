"""One delivery to one channel: allow-list check, retries with back-off (tenacity)
and the endpoint's circuit breaker. Never raises: the result says sent or failed."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.notifier.breaker import Breaker
from services.notifier.channels import Channel, PermanentError, TransientError
from services.notifier.endpoints import EndpointRefused, IpNetwork, check_addresses, redact
from services.notifier.messages import Notification
from shared.clock import Clock
from shared.config import NotifierSettings

log = logging.getLogger(__name__)

Resolver = Callable[[str], Awaitable[list[str]]]


class CircuitOpen(Exception):
    """The endpoint's breaker is open: the call is not made."""


@dataclass(frozen=True)
class DeliveryResult:
    sent: bool
    attempts: int
    error: str = ""


async def resolve_host(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


@dataclass
class Deliverer:
    channel: Channel
    settings: NotifierSettings
    clock: Clock
    secrets: tuple[str, ...] = ()
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    resolve: Resolver = resolve_host
    breaker: Breaker = field(init=False)

    def __post_init__(self) -> None:
        self.breaker = Breaker(self.settings.breaker_failures, self.settings.breaker_reset_s)

    async def deliver(
        self, notification: Notification, on_attempt: Callable[[], Awaitable[Any]] | None = None
    ) -> DeliveryResult:
        calls: list[str] = []  # the error of each call made ("" for none yet)
        try:
            await self._check_allowed(self.settings.allowed_networks)
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.settings.max_attempts),
                wait=wait_exponential(
                    multiplier=self.settings.backoff_initial_s, max=self.settings.backoff_max_s
                ),
                retry=retry_if_exception_type(TransientError),
                sleep=self.sleep,
                reraise=True,
            )
            async for attempt in retrying:
                with attempt:
                    if on_attempt is not None:
                        await on_attempt()  # keeps the event's ack deadline away
                    await self._call(notification, calls)
        except (CircuitOpen, TransientError, PermanentError, EndpointRefused) as exc:
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, CircuitOpen) and calls:  # opened by this delivery's own failures
                error = f"{calls[-1]} ({exc})"
            return DeliveryResult(sent=False, attempts=len(calls), error=redact(error, self.secrets))
        return DeliveryResult(sent=True, attempts=len(calls))

    async def _check_allowed(self, allowed: Iterable[IpNetwork]) -> None:
        networks = list(allowed)
        if not networks:
            return
        try:
            addresses = await self.resolve(self.channel.host)
        except OSError as exc:
            raise TransientError(f"cannot resolve the host: {exc}") from None
        check_addresses(self.channel.endpoint, addresses, networks)

    async def _call(self, notification: Notification, calls: list[str]) -> None:
        now = self.clock.monotonic()
        if not self.breaker.allows(now):
            raise CircuitOpen(f"circuit open, next trial in {self.breaker.retry_in(now):.0f} s")
        self.breaker = self.breaker.begin(now)
        calls.append("")
        try:
            await self.channel.send(notification)
        except TransientError as exc:
            calls[-1] = f"{type(exc).__name__}: {exc}"
            self._set(self.breaker.failed(self.clock.monotonic()))
            raise
        except PermanentError:
            # The endpoint answered: it is up, even though it refused this message.
            self._set(self.breaker.succeeded())
            raise
        except Exception as exc:  # a bug or a bad URL, not an outage: give up on this message
            self._set(self.breaker.abandoned())
            raise PermanentError(f"{type(exc).__name__}: {exc}") from None
        except BaseException:  # cancelled: says nothing about the endpoint
            self._set(self.breaker.abandoned())
            raise
        self._set(self.breaker.succeeded())

    def _set(self, new: Breaker) -> None:
        old, self.breaker = self.breaker, new
        if old.state != "open" and new.state == "open":
            log.warning(
                "circuit opened for %s", self.channel.endpoint,
                extra={"event": "breaker_opened", "channel": self.channel.name,
                       "endpoint": self.channel.endpoint, "reset_s": new.reset_after_s},
            )  # fmt: skip
        elif old.state != "closed" and new.state == "closed":
            log.info(
                "circuit closed for %s", self.channel.endpoint,
                extra={"event": "breaker_closed", "channel": self.channel.name,
                       "endpoint": self.channel.endpoint},
            )  # fmt: skip
