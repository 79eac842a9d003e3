"""`lxc-autoscale console`: the operator's web page and JSON API.

Composition: the console service (services/console, which imports only shared/) gets
the decider's pure `explain` and `explain_groups`, so the verdicts it shows are the ones
the deciders compute.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal

from services.console.service import CONSOLE_TOKEN_VARIABLE, ConsoleService
from services.decider.explain import make_explainer
from services.decider.explain_groups import make_group_explainer
from shared.service_config import add_common_arguments, start_service


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--listen", help="address to serve on (default: CONSOLE.listen, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to serve on (default: CONSOLE.port, 8089; 0: any)")


def run(args: argparse.Namespace) -> int:
    # The token may come from the environment (compose, systemd), where it beats the file.
    token = os.environ.get(CONSOLE_TOKEN_VARIABLE) or None
    config = start_service(
        "console", args, flags={"console": {"listen": args.listen, "port": args.port, "token": token}}
    )
    service = ConsoleService(config, make_explainer(config), explain_groups=make_group_explainer(config))
    return asyncio.run(_serve(service))


async def _serve(service: ConsoleService) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await service.run(stop)
    return 0
