"""Stopping a KV watcher and the task that follows it, shared by the state store and
the policy source."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def stop_following(task: asyncio.Task[None] | None, watcher: Any) -> None:
    """Cancel the follower task, then stop the watcher; errors of a dead connection are moot."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if watcher is not None:
        with contextlib.suppress(Exception):
            await watcher.stop()
