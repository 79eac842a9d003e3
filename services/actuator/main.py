"""`lxc-autoscale actuator`: apply scale intents for one node with validated pct commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from services.actuator.commands import CommandRefused, HostLimits
from services.actuator.executors.base import Executor
from services.actuator.wiring import StartupError, build_actuator, build_executor, probe_host
from shared import failpoints
from shared.config import ActuatorSettings, AutoscaleConfig
from shared.nats_settings import connect
from shared.node_name import node_name
from shared.provisioning import NotProvisionedError
from shared.service_config import add_common_arguments, start_service
from shared.startup import StoppedWaiting, until_answered

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--node", help="the Proxmox node whose intents to apply (default: ACTUATOR.node or host name)"
    )
    parser.add_argument(
        "--pct", dest="pct_path", help="path of pct (default: ACTUATOR.pct_path, /usr/sbin/pct)"
    )
    parser.add_argument(
        "--root", help="the node's file system root, where etc/pve/lxc is read (default: ACTUATOR.root, /)"
    )
    parser.add_argument("--host-cores", type=int, help="host core count (default: read from the node)")
    parser.add_argument("--host-memory-mb", type=int, help="host memory in MB (default: read from the node)")
    parser.add_argument("--max-in-flight", type=int, default=8, help="intents handled at once (default: 8)")


def run(args: argparse.Namespace) -> int:
    flags = {
        "node": args.node,
        "pct_path": args.pct_path,
        "root": args.root,
        "host_cores": args.host_cores,
        "host_memory_mb": args.host_memory_mb,
    }
    config = start_service("actuator", args, {"actuator": flags})
    failpoints.arm_from_environment(os.environ)
    try:
        return asyncio.run(_serve(config, args))
    except (StartupError, NotProvisionedError, CommandRefused, ValueError) as exc:
        log.error("cannot start: %s", exc, extra={"event": "startup_failed"})
        print(f"lxc-autoscale actuator: {exc}", file=sys.stderr)
        return 2


async def _serve(config: AutoscaleConfig, args: argparse.Namespace) -> int:
    node = node_name(config.actuator.node)
    settings = config.actuator
    executor = build_executor(config, node)
    try:
        limits = await _host_limits(settings, executor)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            nc = await connect(config.nats, service="actuator", stop=stop)
        except StoppedWaiting:
            return 0
        try:
            actuator = await until_answered(
                lambda: build_actuator(
                    nc=nc, node=node, settings=settings, executor=executor, limits=limits,
                    tiers=config, max_in_flight=args.max_in_flight,
                ),
                what=f"actuator for node {node} start-up", stop=stop,
            )  # fmt: skip
        except StoppedWaiting:
            await nc.close()
            return 0
        await actuator.service.run(stop)
        log.info("actuator stopped", extra={"event": "actuator_stopped", **dict(actuator.handler.counts)})
        await nc.drain()
    finally:
        await executor.close()
    return 0


async def _host_limits(settings: ActuatorSettings, executor: Executor) -> HostLimits:
    """The host's size: ACTUATOR.host_cores/host_memory_mb (or their flags), else read from the node."""
    cores, memory_mb = settings.host_cores, settings.host_memory_mb
    if cores is not None and memory_mb is not None:
        return HostLimits(cores=cores, memory_mb=memory_mb)
    probed = await probe_host(executor, settings.command_timeout_s)
    return HostLimits(cores=cores or probed.cores, memory_mb=memory_mb or probed.memory_mb)
