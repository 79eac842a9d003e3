"""`lxc-autoscale setup`: create or update the streams, consumers and buckets (idempotent).

The only command that changes them: run it as the NATS setup user (`admin`). Services
only check what it made (shared/provisioning.py `verify`). Each actuator's durable
consumer is made here too, for every node named by `--node`, `$AUTOSCALE_NODES` or the
configuration (COLLECTOR.node, ACTUATOR.node, ACTUATOR.node_hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
from collections.abc import Mapping

from nats.js.api import ConsumerConfig

from services.actuator.wiring import node_consumer
from shared import subjects
from shared.config import AutoscaleConfig
from shared.nats_settings import connect
from shared.provisioning import StreamSettings, provision
from shared.service_config import add_common_arguments, start_service
from shared.validation import check_node_name

log = logging.getLogger(__name__)
NODES_ENV = "AUTOSCALE_NODES"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--node",
        action="append",
        default=[],
        help=f"a node whose actuator consumer to create (repeatable; also ${NODES_ENV}, "
        "comma or space separated, and the nodes named in the configuration)",
    )


def setup_nodes(config: AutoscaleConfig, flags: list[str], env: Mapping[str, str]) -> list[str]:
    """Every node named anywhere, in a stable order, each checked as a node name."""
    named = [*flags, *re.split(r"[\s,]+", env.get(NODES_ENV, ""))]
    named += [config.collector.node, config.actuator.node, *config.actuator.node_hosts]
    return sorted({check_node_name(node) for node in named if node})


def actuator_consumers(config: AutoscaleConfig, nodes: list[str]) -> list[tuple[str, ConsumerConfig]]:
    return [(subjects.INTENTS_STREAM, node_consumer(config.actuator, node)) for node in nodes]


def run(args: argparse.Namespace) -> int:
    config = start_service("setup", args)
    nodes = setup_nodes(config, args.node, os.environ)
    consumers = actuator_consumers(config, nodes)

    async def go() -> None:
        nc = await connect(config.nats, service="setup")
        try:
            await provision(
                nc.jetstream(),
                StreamSettings(replicas=config.nats.replicas),
                consumers=consumers,
                server_info=nc._server_info,
            )
        finally:
            await nc.close()

    asyncio.run(go())
    log.info(
        "streams, consumers and buckets are in place",
        extra={"url": config.nats.safe_url, "actuator_nodes": nodes, "replicas": config.nats.replicas},
    )
    return 0
