"""Container health check for the lxc-autoscale image (Docker HEALTHCHECK).

Default: load the NATS settings exactly as a service does (the YAML file named by
LXC_AUTOSCALE_CONFIG, then the NATS_* environment overrides), connect, authenticate
and round-trip a PING. Exit 0 when that works within the timeout, 1 otherwise, with
one line saying why (docker inspect shows it). No subject permission is needed, so
the check works for every service user.

`--path FILE` instead checks that FILE exists (the simulated node, which has no
broker connection, uses it to say its tree is built).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from shared.nats_settings import NatsSettings
from shared.service_config import DEFAULT_CONFIG_PATH, config_path, resolve


def _settings() -> NatsSettings:
    path = config_path(None, os.environ)
    if not path.is_file():
        path = DEFAULT_CONFIG_PATH  # a missing file means the built-in defaults, as for a service
    return resolve(path, env=os.environ).nats


async def _ping(timeout_s: float) -> None:
    import nats

    options = _settings().connect_options()
    options.update(
        name="lxc-autoscale-healthcheck",
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=timeout_s,
    )

    async def quiet(_exc: Exception) -> None:
        return None

    nc = await nats.connect(error_cb=quiet, **options)
    try:
        await nc.flush(timeout=max(1, round(timeout_s)))
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description=__doc__)
    parser.add_argument("--path", type=Path, help="only check that this file exists")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    if args.path is not None:
        if args.path.exists():
            return 0
        print(f"unhealthy: {args.path} does not exist yet", file=sys.stderr)
        return 1
    try:
        asyncio.run(asyncio.wait_for(_ping(args.timeout), args.timeout + 1))
    except Exception as exc:  # any failure means unhealthy; say which
        print(f"unhealthy: NATS not reachable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
