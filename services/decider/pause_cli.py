"""`lxc-autoscale pause`: stop scaling everywhere, on one node or for one container
(`--resume` undoes it).

Writes or deletes the pause entries that running decider replicas follow live in the
KV bucket `autoscale_policy` (see services/decider/policy/pause.py); no restart needed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime

from nats.js.errors import KeyNotFoundError

from shared import subjects
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.pauses import PauseEntry, pause_key
from shared.service_config import add_common_arguments, start_service


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--node", help="pause every container of this node (with --vmid: that container)")
    parser.add_argument("--vmid", type=int, help="pause one container (needs --node)")
    parser.add_argument(
        "--mode", choices=("all", "scale-down", "scale-up"), default="all", help="what to stop (pause only)"
    )
    parser.add_argument("--until", type=datetime.fromisoformat, help="ISO time the pause ends by itself")
    parser.add_argument("--reason", default="", help="shown in the decider's log")
    parser.add_argument("--resume", action="store_true", help="remove the pause instead")


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
        nc = await connect(config.nats, service="pause", give_up_after_s=TOOL_CONNECT_WAIT_S)
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
