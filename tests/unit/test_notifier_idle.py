"""A notifier with no channel configured stays up, idle, until it is told to stop:
exiting would make compose restart it for ever and `docker compose up --wait` fail."""

from __future__ import annotations

import asyncio

from services.notifier.service import NotifierService


async def test_a_notifier_without_channels_runs_until_stopped() -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(NotifierService(workers=[]).run(stop))
    await asyncio.sleep(0.2)
    assert not running.done()
    stop.set()
    await asyncio.wait_for(running, timeout=2)
