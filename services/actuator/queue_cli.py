"""`lxc-autoscale queue`: intents waiting per node, and whether an actuator takes them.

An intent for a node without a running actuator is never applied and gets no event (no
actuator, no one to report it): it waits in the work queue until it is older than the
stream's max age. This command is what an operator (or a cron job, a monitor) sees: one
line per node with queued intents, and exit status 1 when a node's intents have not been
taken for longer than `--older-than` — no `actuator-<node>` consumer, or one that nobody
pulls from — or when intents were delivered `max_deliver` times without an ack (the
server will not deliver them again; only broker trouble on every try gets there).
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js.errors import NotFoundError

from shared import subjects
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.service_config import add_common_arguments, start_service


@dataclass(frozen=True)
class NodeQueue:
    node: str
    queued: int  # intents in the work queue for this node
    consumer: bool  # an actuator-<node> consumer exists
    undelivered: int  # intents no actuator has fetched yet
    in_flight: int  # fetched, not acknowledged yet
    last_active: datetime | None  # the consumer's last delivery

    def stranded(self, now: datetime, older_than: timedelta) -> str:
        """Why this node's intents are not being taken, or "" when they are."""
        if self.queued == 0:
            return ""
        if not self.consumer:
            return f"no actuator: consumer {subjects.actuator_consumer(self.node)} does not exist"
        given_up = self.queued - self.undelivered - self.in_flight
        if given_up > 0:  # delivered max_deliver times, never acked: the server stopped trying
            return f"{given_up} intent(s) reached max_deliver and will not be delivered again"
        idle = self.last_active is None or now - self.last_active > older_than
        if self.undelivered and idle:
            since = "never" if self.last_active is None else self.last_active.isoformat(timespec="seconds")
            return f"no actuator is pulling: {self.undelivered} undelivered, last delivery {since}"
        return ""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "--older-than", type=float, default=60.0, metavar="S",
        help="report a node whose intents nobody took for this long (default: 60 s)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    config = start_service("queue", args)
    return asyncio.run(_report(config.nats, timedelta(seconds=args.older_than)))


async def _report(settings: Any, older_than: timedelta) -> int:
    nc = await connect(settings, service="queue", give_up_after_s=TOOL_CONNECT_WAIT_S)
    try:
        queues = await node_queues(nc.jetstream())
    finally:
        await nc.close()
    now = datetime.now(UTC)
    stranded = 0
    for queue in queues:
        why = queue.stranded(now, older_than)
        stranded += bool(why)
        print(f"{queue.node}: {queue.queued} intent(s) queued" + (f" - {why}" if why else ""), flush=True)
    return 1 if stranded else 0


async def node_queues(js: Any) -> list[NodeQueue]:
    info = await js.stream_info(subjects.INTENTS_STREAM, subjects_filter=subjects.INTENTS_ALL)
    counts: dict[str, int] = dict(info.state.subjects or {})
    nodes = {subject.removeprefix(f"{subjects.INTENTS_PREFIX}.") for subject in counts}
    queues = []
    for node in sorted(nodes):
        try:
            consumer = await js.consumer_info(subjects.INTENTS_STREAM, subjects.actuator_consumer(node))
        except NotFoundError:
            consumer = None
        queues.append(
            NodeQueue(
                node=node,
                queued=counts[subjects.intents_subject(node)],
                consumer=consumer is not None,
                undelivered=consumer.num_pending if consumer is not None else 0,
                in_flight=consumer.num_ack_pending if consumer is not None else 0,
                last_active=consumer.delivered.last_active if consumer is not None else None,
            )
        )
    return queues
