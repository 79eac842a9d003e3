"""`lxc-autoscale decider`: run one decider replica (run as many as you like)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from services.decider.service import DeciderService
from shared.provisioning import NotProvisionedError
from shared.service_config import add_common_arguments, start_service

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--replica-id",
        default=os.environ.get("LXC_AUTOSCALE_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}",
        help="name of this replica in logs and in the NATS connection (default: host-pid)",
    )


def run(args: argparse.Namespace) -> int:
    config = start_service("decider", args)
    service = DeciderService(config, config_path=args.config, replica_id=args.replica_id)
    try:
        return asyncio.run(_serve(service))
    except NotProvisionedError as exc:
        log.error("%s", exc, extra={"event": "not_provisioned"})
        print(f"lxc-autoscale decider: {exc}", file=sys.stderr)
        return 2


async def _serve(service: DeciderService) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await service.run(stop)
    log.info("decider %s stopped", service.replica_id, extra={"event": "stopped"})
    return 0
