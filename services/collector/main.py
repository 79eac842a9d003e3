"""`lxc-autoscale collector`: publish node samples, or print one with --once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.collector.cycle import Collector
from services.collector.once import collect_once, summary_lines
from services.collector.sampling import SamplingSettings
from services.collector.service import CollectorService
from services.collector.sources.base import SourceError
from services.collector.sources.detect import build_source, detect_source
from shared import subjects
from shared.clock import Clock, SystemClock
from shared.config import AutoscaleConfig
from shared.nats_settings import connect
from shared.node_name import node_name
from shared.provisioning import NotProvisionedError, verify
from shared.service_config import add_common_arguments, start_service
from shared.startup import StoppedWaiting

log = logging.getLogger(__name__)

ONCE_DEFAULT_INTERVAL_S = 1.0
_STARTUP_RETRY_S = 2.0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{value:g} s is outside 0 < interval <= 3600")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--once", action="store_true", help="read twice, print one sample, exit")
    parser.add_argument(
        "--json", action="store_true", help="with --once: print the sample as JSON (a `decide` sample file)"
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        help="seconds between samples (default COLLECTOR.interval_s; 1 with --once)",
    )
    parser.add_argument(
        "--root", type=Path, help="directory holding etc/pve, sys/fs/cgroup and proc (default COLLECTOR.root)"
    )
    parser.add_argument("--node", help="node name (default COLLECTOR.node, else the host name)")
    parser.add_argument(
        "--source",
        choices=("auto", "cgroup", "pvesh", "sim", "api"),
        help="where metrics come from (default COLLECTOR.source)",
    )


def run(
    args: argparse.Namespace,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Entry point; tests pass their own clock and sleep to drive --once deterministically."""
    flags = {"interval_s": args.interval, "root": args.root, "node": args.node, "source": args.source}
    config = start_service("collector", args, {"collector": flags})
    clock = clock or SystemClock()
    # --once reads twice a second apart unless told otherwise; the service uses the setting.
    once_default = args.once and args.interval is None
    interval = ONCE_DEFAULT_INTERVAL_S if once_default else config.collector.interval_s
    try:
        collector = build_collector(config, interval)
    except (SourceError, ValueError) as exc:
        print(f"collector: {exc}", file=sys.stderr)
        return 2
    if args.once:
        try:
            sample = collect_once(collector, clock, sleep or time.sleep, interval)
        except SourceError as exc:
            print(f"collector: {exc}", file=sys.stderr)
            return 1
        print(sample.model_dump_json(indent=2) if args.json else "\n".join(summary_lines(sample)))
        return 0
    return asyncio.run(serve(collector, config, clock))


def build_collector(config: AutoscaleConfig, interval: float) -> Collector:
    settings = config.collector
    root = settings.root
    node = node_name(settings.node, root)
    label = detect_source(settings.source, root)
    source = build_source(label, root, node, config.defaults.proxmox_api)
    log.info(
        "collector ready",
        extra={"event": "collector_ready", "node": node, "source": label, "root": str(root)},
    )
    return Collector(
        source,
        node=node,
        interval_s=interval,
        settings=SamplingSettings(
            memory_exclude_cache=config.defaults.memory_exclude_cache,
            ignore=frozenset(config.defaults.ignore_lxc),
        ),
    )


async def serve(collector: Collector, config: AutoscaleConfig, clock: Clock) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        nc = await _connect_until_ready(config, stop)
    except NotProvisionedError as exc:
        log.error("%s", exc, extra={"event": "not_provisioned"})
        print(f"lxc-autoscale collector: {exc}", file=sys.stderr)
        return 2
    if nc is None:
        return 0
    try:
        await CollectorService(collector, nc, clock).run(stop)
    finally:
        await nc.close()
    return 0


async def _connect_until_ready(config: AutoscaleConfig, stop: asyncio.Event) -> Any | None:
    """Connect and check the metrics stream, retrying while the broker is not up yet; None if
    told to stop. Raises NotProvisionedError when the stream is missing or set up differently."""
    reported = False
    while not stop.is_set():
        nc = None
        try:
            nc = await connect(config.nats, service="collector", stop=stop)
            await verify(nc.jetstream(), service="collector", streams=[subjects.METRICS_STREAM])
            return nc
        except NotProvisionedError:
            if nc is not None:
                await nc.close()
            raise
        except StoppedWaiting:
            return None
        except Exception as exc:  # broker not reachable yet: keep trying, say so once
            if nc is not None:
                await nc.close()
            if not reported:
                log.warning(
                    "cannot reach NATS yet (%s); retrying every %g s",
                    exc,
                    _STARTUP_RETRY_S,
                    extra={"event": "nats_unreachable"},
                )
                reported = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=_STARTUP_RETRY_S)
            except TimeoutError:
                continue
    return None
