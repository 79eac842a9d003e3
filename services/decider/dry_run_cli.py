"""`lxc-autoscale dry-run on|off|config`: switch dry-run for every decider replica at run
time (no argument: print the switch). Writes or deletes the `dry_run` entry of the KV
bucket `autoscale_policy` that running replicas follow (shared/dry_run.py); `config`
deletes it, so each replica's DEFAULT.dry_run decides again.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from nats.js.errors import KeyNotFoundError

from shared import subjects
from shared.dry_run import DRY_RUN_KEY, effective_dry_run, read_dry_run, store_dry_run
from shared.nats_settings import TOOL_CONNECT_WAIT_S, connect
from shared.service_config import add_common_arguments, start_service


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument(
        "switch", nargs="?", choices=("on", "off", "config"),
        help="on: intents are only recorded; off: they are applied; config: DEFAULT.dry_run decides",
    )  # fmt: skip
    parser.add_argument("--reason", default="", help="shown by the console and `lxc-autoscale status`")


def run(args: argparse.Namespace) -> int:
    config = start_service("dry-run", args)

    async def apply() -> str:
        nc = await connect(config.nats, service="dry-run", give_up_after_s=TOOL_CONNECT_WAIT_S)
        try:
            kv = await nc.jetstream().key_value(subjects.POLICY_BUCKET)
            if args.switch is not None:
                await store_dry_run(kv, args.switch, datetime.now(UTC), args.reason)
            try:
                stored = read_dry_run((await kv.get(DRY_RUN_KEY)).value)
            except KeyNotFoundError:
                stored = None
        finally:
            await nc.close()
        enabled, source = effective_dry_run(stored, config.defaults.dry_run)
        why = f": {stored.reason}" if stored and stored.reason else ""
        return f"dry-run {'on' if enabled else 'off'} ({source}{why})"

    print(asyncio.run(apply()))
    return 0
