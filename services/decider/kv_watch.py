"""Following a KV watcher and stopping it, shared by the state store, the policy source
and the groups coordinator."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


async def follow(
    watcher: KeyValue.KeyWatcher,
    apply: Callable[[KeyValue.Entry], None],
    ready: asyncio.Future[None],
    what: str,
) -> None:
    """Apply every entry `watcher` yields; `ready` resolves once the initial values are in.
    If the watcher fails the view goes stale (compare-and-set still keeps writes safe)."""
    try:
        async for entry in watcher:
            if entry is None:  # end of the initial values
                if not ready.done():
                    ready.set_result(None)
                continue
            apply(entry)
            if not ready.done() and not entry.delta:
                ready.set_result(None)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.warning("%s watcher stopped: %s", what, exc, extra={"event": f"{what}_watch_stopped"})
    finally:
        if not ready.done():
            ready.set_result(None)


async def stop_following(task: asyncio.Task[None] | None, watcher: KeyValue.KeyWatcher | None) -> None:
    """Cancel the follower task, then stop the watcher; errors of a dead connection are moot."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if watcher is not None:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]  # untyped in nats-py
