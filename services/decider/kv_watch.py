"""Stopping a KV watcher and the task that follows it, shared by the state store and
the policy source."""

from __future__ import annotations

import asyncio
import contextlib

from nats.js.kv import KeyValue


async def stop_following(task: asyncio.Task[None] | None, watcher: KeyValue.KeyWatcher | None) -> None:
    """Cancel the follower task, then stop the watcher; errors of a dead connection are moot."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if watcher is not None:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]  # untyped in nats-py
