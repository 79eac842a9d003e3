"""`lxc-autoscale rollback`: ask the actuator to restore containers to their original sizes.

The originals were saved in KV before the first change. The size a container has now is
taken from its latest event; that becomes the intent's `expected`, so if somebody changed
the container since, the actuator skips the rollback as stale instead of overwriting.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

from nats.js.errors import NotFoundError

from services.actuator.records import BackupRecord
from services.actuator.store import ActuatorStore
from shared import subjects
from shared.codec import CodecError, decode, encode
from shared.models import DecisionReason, ResourceSize, ScaleEvent, ScaleIntent
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.node_name import node_name
from shared.service_config import add_common_arguments, start_service
from shared.validation import check_vmid

ROLLBACK_TTL_S = 600.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--vmid", type=int, help="restore this container")
    which.add_argument("--all", action="store_true", help="restore every container with a saved size")
    parser.add_argument("--node", help="the node (default: ACTUATOR.node or this host's name)")


def run(args: argparse.Namespace) -> int:
    config = start_service("rollback", args, {"actuator": {"node": args.node}})
    try:
        node = node_name(config.actuator.node)
        vmid = check_vmid(args.vmid) if args.vmid is not None else None
    except ValueError as exc:
        print(f"lxc-autoscale rollback: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_rollback(config.nats, node, vmid))


async def _rollback(settings: Any, node: str, vmid: int | None) -> int:
    nc = await connect(settings, service="rollback", give_up_after_s=TOOL_CONNECT_WAIT_S)
    try:
        js = nc.jetstream()
        store = await ActuatorStore.open(js)
        if vmid is not None:
            found = await store.original(node, vmid)
            records = [found] if found is not None else []
        else:
            records = await store.originals(node)
        if not records:
            which = f"{node}/{vmid}" if vmid is not None else f"any container of {node}"
            print(f"no saved original size for {which}: the autoscaler never changed it", file=sys.stderr)
            return 1
        source_id = f"rollback:{datetime.now(UTC).strftime('%Y%m%dT%H%M%S.%fZ')}"
        for record in records:
            print(await _request(js, record, source_id))
    finally:
        await nc.close()
    return 0


async def _request(js: Any, record: BackupRecord, source_id: str) -> str:
    name = f"{record.node}/{record.vmid}"
    current = await _current_size(js, record.node, record.vmid)
    if current is None:
        return f"{name}: current size unknown (no event recorded); not requested"
    if current == record.original:
        return f"{name}: already at its original size (cores {current.cores}, memory {current.memory_mb} MB)"
    intent = ScaleIntent.build(
        node=record.node,
        vmid=record.vmid,
        expected=current,
        target=record.original,
        reason=DecisionReason(
            rule="rollback", summary=f"restore the size saved at {record.saved_at:%Y-%m-%d %H:%M}"
        ),
        source_id=source_id,
        created_at=datetime.now(UTC),
        ttl_s=ROLLBACK_TTL_S,
        origin="rollback",
    )
    await js.publish(
        subjects.intents_subject(record.node), encode(intent), headers={"Nats-Msg-Id": intent.intent_id}
    )
    return (
        f"{name}: requested cores {current.cores}→{record.original.cores} "
        f"memory {current.memory_mb}→{record.original.memory_mb} MB [intent {intent.intent_id[:8]}…]"
    )


async def _current_size(js: Any, node: str, vmid: int) -> ResourceSize | None:
    try:
        last = await js.get_last_msg(subjects.EVENTS_STREAM, subjects.events_subject(node, vmid))
        event = decode(last.data, ScaleEvent)
    except (NotFoundError, CodecError):
        return None
    return event.after or event.before
