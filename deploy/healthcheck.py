"""Container health check for the lxc-autoscale image (Docker HEALTHCHECK).

Default: load the NATS settings exactly as a service does (the YAML file named by
LXC_AUTOSCALE_CONFIG, then the NATS_* environment overrides), connect, authenticate
and round-trip a PING. Exit 0 when that works within the timeout, 1 otherwise, with
one line saying why (docker inspect shows it). No subject permission is needed, so
the check works for every service user.

`--ready` instead asks the service itself: GET /readyz on 127.0.0.1 at the port the
service wrote to $LXC_AUTOSCALE_METRICS_PORT_FILE (or, without that file,
$LXC_AUTOSCALE_METRICS_PORT). Healthy only when the service says every one of its
checks passes (connected, provisioning verified, consumer bound: docs/metrics.md);
unhealthy lines name the failing checks.

`--path FILE` instead checks that FILE exists (the simulated node, which has no
broker connection, uses it to say its tree is built).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from shared.nats_settings import NatsSettings, open_connection
from shared.service_config import DEFAULT_CONFIG_PATH, config_path, resolve


def _settings() -> NatsSettings:
    path = config_path(None, os.environ)
    if not path.is_file():
        path = DEFAULT_CONFIG_PATH  # a missing file means the built-in defaults, as for a service
    return resolve(path, env=os.environ).nats


async def _ping(timeout_s: float) -> None:
    async def quiet(_exc: Exception) -> None:
        return None

    nc = await open_connection(
        _settings(),
        name="lxc-autoscale-healthcheck",
        allow_reconnect=False,
        max_reconnect_attempts=0,
        connect_timeout=timeout_s,
        error_cb=quiet,
    )
    try:
        await nc.flush(timeout=max(1, round(timeout_s)))
    finally:
        await nc.close()


def _metrics_port() -> int:
    port_file = os.environ.get("LXC_AUTOSCALE_METRICS_PORT_FILE")
    if port_file and Path(port_file).is_file():
        return int(Path(port_file).read_text().strip())
    port = os.environ.get("LXC_AUTOSCALE_METRICS_PORT", "")
    if port and port != "0":
        return int(port)
    raise LookupError("the service has not said its metrics port yet (no port file, no fixed port)")


def _ready(timeout_s: float) -> str | None:
    """None when the service's /readyz says ready, else why not."""
    try:
        url = f"http://127.0.0.1:{_metrics_port()}/readyz"
        with urllib.request.urlopen(url, timeout=timeout_s):
            return None
    except urllib.error.HTTPError as exc:  # 503: the body names the checks
        try:
            checks = json.loads(exc.read()).get("checks", {})
            failing = sorted(name for name, ok in checks.items() if not ok)
        except ValueError:
            failing = []
        return f"not ready: {', '.join(failing) or f'HTTP {exc.code}'}"
    except (OSError, LookupError, ValueError) as exc:
        return f"no answer from /readyz: {type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="healthcheck", description=__doc__)
    parser.add_argument("--path", type=Path, help="only check that this file exists")
    parser.add_argument("--ready", action="store_true", help="ask the service's own /readyz")
    parser.add_argument("--timeout", type=float, default=4.0, help="seconds (default %(default)s)")
    args = parser.parse_args(argv)
    if args.path is not None:
        if args.path.exists():
            return 0
        print(f"unhealthy: {args.path} does not exist yet", file=sys.stderr)
        return 1
    if args.ready:
        problem = _ready(args.timeout)
        if problem is not None:
            print(f"unhealthy: {problem}", file=sys.stderr)
            return 1
        return 0
    try:
        asyncio.run(asyncio.wait_for(_ping(args.timeout), args.timeout + 1))
    except Exception as exc:  # any failure means unhealthy; say which
        print(f"unhealthy: NATS not reachable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
