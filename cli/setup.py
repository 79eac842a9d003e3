"""`lxc-autoscale setup`: create the streams, consumers and buckets (idempotent)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from shared.nats_settings import connect
from shared.provisioning import provision
from shared.service_config import add_common_arguments, start_service

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = start_service("setup", args)

    async def go() -> None:
        nc = await connect(config.nats, service="setup")
        try:
            await provision(nc.jetstream())
        finally:
            await nc.close()

    asyncio.run(go())
    log.info("streams, consumers and buckets are in place", extra={"url": config.nats.url})
    return 0
