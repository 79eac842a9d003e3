"""`lxc-autoscale notifier`: send Gotify, e-mail, Uptime Kuma and webhook notifications
for scaling events, each event at most once per channel (docs/notifier.md)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal

from nats.js.errors import NotFoundError

from services.notifier.wiring import build_notifier
from shared import failpoints
from shared.clock import SystemClock
from shared.config import AutoscaleConfig
from shared.nats_settings import connect
from shared.service_config import add_common_arguments, start_service
from shared.startup import StoppedWaiting

log = logging.getLogger(__name__)
SETUP_WAIT_S = 2.0
DRAIN_TIMEOUT_S = 5.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = start_service("notifier", args)
    failpoints.arm_from_environment(os.environ)
    return asyncio.run(_serve(config))


async def _serve(config: AutoscaleConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        nc = await connect(config.nats, service="notifier", stop=stop)
    except StoppedWaiting:
        return 0
    js = nc.jetstream()
    notifier = None
    while notifier is None and not stop.is_set():
        try:
            notifier = await build_notifier(js, config, SystemClock())
        except NotFoundError:  # the bucket is made by `lxc-autoscale setup`, not by us
            log.warning("delivery records bucket missing; run `lxc-autoscale setup`",
                        extra={"event": "setup_missing"})  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SETUP_WAIT_S)
    if notifier is not None:
        if not notifier.service.workers:
            log.warning("no notification channel is configured; idle",
                        extra={"event": "no_channels"})  # fmt: skip
        try:
            await notifier.service.run(stop)
        finally:
            await notifier.close()
        counts = {w.channel: dict(w.counts) for w in notifier.service.workers}
        log.info("notifier stopped", extra={"event": "notifier_stopped", "counts": counts})
    try:
        await asyncio.wait_for(nc.drain(), DRAIN_TIMEOUT_S)  # flushes the last acks
    except Exception:  # stopping anyway; the records keep a redelivery harmless
        await nc.close()
    return 0
