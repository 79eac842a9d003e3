"""One fetch from a JetStream pull subscription that gives way when the service stops."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats.errors


async def fetch_until_stopped(
    subscription: Any, batch: int, timeout_s: float, stop: asyncio.Event
) -> list[Any]:
    """Up to `batch` messages, or none after `timeout_s` or as soon as `stop` is set.

    Messages a cancelled fetch had already pulled are redelivered after the ack wait."""
    fetch = asyncio.ensure_future(subscription.fetch(batch=batch, timeout=timeout_s))
    # Should this call itself be cancelled mid-wait, the fetch still ends on its own; its
    # timeout must not surface later as a "never retrieved" error in some other place.
    fetch.add_done_callback(_retrieve)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not fetch.done():
        fetch.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await fetch
        return []
    try:
        messages: list[Any] = fetch.result()
    except nats.errors.TimeoutError:
        return []
    return messages


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
