"""`lxc-autoscale pause` / `resume`: stop scaling everywhere or for one container.

Writes or deletes the pause entries that running decider replicas follow live in the
KV bucket `autoscale_policy` (see services/decider/policy/pause.py); no restart needed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from nats.js.errors import KeyNotFoundError

from services.decider.policy.pause import GLOBAL_PAUSE_KEY, PauseEntry, container_pause_key
from shared import subjects
from shared.nats_settings import connect
from shared.service_config import add_common_arguments, start_service
from shared.validation import check_node_name, check_vmid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--node", help="the container's node (with --vmid)")
    parser.add_argument("--vmid", type=int, help="pause one container instead of every one")
    parser.add_argument(
        "--mode", choices=("all", "scale-down", "scale-up"), default="all", help="what to stop (pause only)"
    )
    parser.add_argument("--until", type=datetime.fromisoformat, help="ISO time the pause ends by itself")
    parser.add_argument("--reason", default="", help="shown in the decider's log")
    parser.add_argument("--resume", action="store_true", help="remove the pause instead")


def pause_key(node: str | None, vmid: int | None) -> str:
    if vmid is None:
        if node is not None:
            raise ValueError("--node needs --vmid: a pause is global or for one container")
        return GLOBAL_PAUSE_KEY
    if node is None:
        raise ValueError("--vmid needs --node: vmids are unique per cluster, keys are per node")
    return container_pause_key(check_node_name(node), check_vmid(vmid))


def run(args: argparse.Namespace) -> int:
    config = start_service("pause", args)
    try:
        key = pause_key(args.node, args.vmid)
        entry = None
        if not args.resume:
            if args.until is not None and args.until.tzinfo is None:
                raise ValueError("--until needs a time zone, e.g. 2026-01-05T18:00:00+00:00")
            entry = PauseEntry(mode=args.mode, until=args.until, reason=args.reason)
    except ValueError as exc:
        print(f"lxc-autoscale pause: {exc}", file=sys.stderr)
        return 2

    async def apply() -> str:
        nc = await connect(config.nats, service="pause")
        try:
            kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)
            if entry is None:
                try:
                    await kv.delete(key)
                except KeyNotFoundError:
                    return f"{key}: was not paused"
                return f"{key}: resumed"
            await kv.put(key, entry.model_dump_json().encode())
            until = f" until {entry.until.isoformat()}" if entry.until else ""
            return f"{key}: paused ({entry.mode}){until}"
        finally:
            await nc.close()

    print(asyncio.run(apply()))
    return 0
