"""A service's start-up steps against JetStream, retried while the cluster cannot answer.

On a three-server cluster a stream or bucket has no leader for a few seconds after a
server is lost; JetStream then answers 503 or not at all. A service started in that gap
waits, saying so, instead of exiting: only a real answer ("does not exist", "set up
differently": NotProvisionedError) ends the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from shared.validation import sanitize

log = logging.getLogger(__name__)
T = TypeVar("T")
_FIRST_DELAY_S = 0.5
_MAX_DELAY_S = 5.0
_JETSTREAM_UNAVAILABLE = 10008  # "JetStream system temporarily unavailable"


def cluster_busy(exc: BaseException) -> bool:
    """The broker could not answer now (no leader, no responder, a timeout, a reconnect);
    asking again later may work."""
    if isinstance(exc, NotFoundError):
        return False
    if isinstance(exc, ServiceUnavailableError):
        return True
    if isinstance(exc, APIError):
        return exc.code == 503 or exc.err_code == _JETSTREAM_UNAVAILABLE
    return isinstance(
        exc,
        (
            nats.errors.TimeoutError,
            nats.errors.NoRespondersError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.StaleConnectionError,
            asyncio.TimeoutError,
        ),
    )


class StoppedWaiting(Exception):
    """The service was told to stop while it waited for the cluster."""


async def until_answered(step: Callable[[], Awaitable[T]], *, what: str, stop: asyncio.Event) -> T:
    """`step()`, tried again (backing off to every 5 s) for as long as it fails only
    because the cluster is busy; every other failure is raised at once, and
    StoppedWaiting once `stop` is set."""
    delay = _FIRST_DELAY_S
    attempts = 0
    while True:
        try:
            result = await step()
        except Exception as exc:
            if not cluster_busy(exc):
                raise
            attempts += 1
            log.warning(
                "%s: NATS cannot answer yet (%s: %s), a stream may have no leader; "
                "retry %d in %.1f s",
                what, type(exc).__name__, sanitize(exc, 200), attempts, delay,
                extra={"event": "waiting_for_nats"},
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                raise StoppedWaiting(f"{what}: stopped while waiting for NATS") from exc
            delay = min(delay * 2, _MAX_DELAY_S)
            continue
        if attempts:
            log.info("%s: NATS answered after %d retries", what, attempts, extra={"event": "nats_answered"})
        return result
