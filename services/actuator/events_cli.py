"""`lxc-autoscale events`: print scaling events from the events stream, oldest first."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from services.actuator.event_format import parse_since
from shared import subjects
from shared.arguments import node_argument, vmid_argument
from shared.codec import CodecError, decode
from shared.event_text import format_line
from shared.models import ScaleEvent
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.service_config import add_common_arguments, start_service

FETCH_BATCH = 256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    parser.add_argument("--node", type=node_argument, help="only this node")
    parser.add_argument("--vmid", type=vmid_argument, help="only this container")
    parser.add_argument("--since", help="from this time on: 30m, 2h, 7d or an ISO time (UTC)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    config = start_service("events", args)
    try:
        since = parse_since(args.since, datetime.now(UTC)) if args.since else None
    except ValueError as exc:
        print(f"lxc-autoscale events: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_print_events(config.nats, args, since))


async def _print_events(settings: Any, args: argparse.Namespace, since: datetime | None) -> int:
    nc = await connect(settings, service="events", give_up_after_s=TOOL_CONNECT_WAIT_S)
    try:
        subscription = await nc.jetstream().pull_subscribe(
            subjects.events_filter(args.node, args.vmid),
            stream=subjects.EVENTS_STREAM,
            config=_consumer(since),
        )
        pending = (await subscription.consumer_info()).num_pending
        if pending or args.follow:
            await _drain(subscription, args)
    finally:
        await nc.close()
    return 0


def _consumer(since: datetime | None) -> ConsumerConfig:
    # Ephemeral and unacknowledged: reading history must not change anything.
    if since is None:
        return ConsumerConfig(
            ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30
        )
    return ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
        inactive_threshold=30,
    )


async def _drain(subscription: Any, args: argparse.Namespace) -> None:
    while True:
        try:
            messages = await subscription.fetch(FETCH_BATCH, timeout=1.0)
        except nats.errors.TimeoutError:
            if args.follow:
                continue
            return
        for msg in messages:
            _print(msg.data, as_json=args.json)
        if not args.follow and messages and messages[-1].metadata.num_pending == 0:
            return


def _print(data: bytes, *, as_json: bool) -> None:
    try:
        event = decode(data, ScaleEvent)
    except CodecError as exc:
        print(f"(unreadable event: {exc})", file=sys.stderr)
        return
    print(event.model_dump_json() if as_json else format_line(event), flush=True)
