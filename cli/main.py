"""`lxc-autoscale`: one command, one subcommand per service or tool.

This is the composition root: the only place that knows every service. Each
service module exposes `add_arguments(parser)` and `run(args) -> int`, and is
imported only when its subcommand runs, so a collector never loads paramiko.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.config import ConfigError
from shared.nats_settings import NatsUnreachable
from shared.observability import (
    CONSUMER_BOUND,
    FOLLOWING,
    NATS_CONNECTED,
    PROVISIONING_VERIFIED,
    READINESS,
    start_health_server,
)

# subcommand -> (module, help); the module provides add_arguments() and run().
COMMANDS: dict[str, tuple[str, str]] = {
    "collector": ("services.collector.main", "read container metrics and publish node samples"),
    "decider": ("services.decider.main", "turn node samples into scale intents (any number of replicas)"),
    "actuator": ("services.actuator.main", "apply scale intents with validated pct commands"),
    "decide": ("services.decider.cli", "run the decision core once on a sample file and print JSON"),
    "pause": ("services.decider.pause_cli", "pause scaling everywhere, on a node or for one container"),
    "dry-run": ("services.decider.dry_run_cli", "switch dry-run on or off for every decider at run time"),
    "notifier": ("services.notifier.main", "send Gotify, e-mail, Uptime Kuma and webhook notifications"),
    "notify-receiver": ("services.notifier.receiver", "print the webhook notifications sent to it"),
    "events": ("services.actuator.events_cli", "print scaling events from the events stream"),
    "queue": ("services.actuator.queue_cli", "intents waiting per node; exit 1 when no actuator takes them"),
    "rollback": ("services.actuator.rollback_cli", "restore containers to the sizes they had before"),
    "console": ("cli.console", "serve the operator's web page and JSON API"),
    "status": ("cli.status", "show containers, decisions and service health (like kubectl get hpa)"),
    "setup": ("cli.setup", "create the streams, consumers and buckets (idempotent)"),
    "config": ("cli.config_check", "check a configuration file"),
    "demo": ("cli.demo", "run the whole system against a simulated Proxmox node"),
}


# Long-running services: each serves /metrics, /healthz and /readyz on --metrics-port, and
# /readyz waits for these checks (marked by shared code and the services, see
# shared/observability.py).
METRICS_PORT_VARIABLE = "LXC_AUTOSCALE_METRICS_PORT"
# Where the bound port is written: with port 0 (any free port, as for decider replicas
# sharing the host network) the container's health check learns it from this file.
METRICS_PORT_FILE_VARIABLE = "LXC_AUTOSCALE_METRICS_PORT_FILE"
READY_CHECKS: dict[str, tuple[str, ...]] = {
    "collector": (NATS_CONNECTED, PROVISIONING_VERIFIED),
    "decider": (NATS_CONNECTED, PROVISIONING_VERIFIED, CONSUMER_BOUND),
    "actuator": (NATS_CONNECTED, PROVISIONING_VERIFIED, CONSUMER_BOUND),
    "notifier": (NATS_CONNECTED,),
    "console": (NATS_CONNECTED, FOLLOWING),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lxc-autoscale",
        description="LXC AutoScale over NATS: keeps Proxmox LXC containers sized to their load.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(command)
            if name in READY_CHECKS:
                _add_metrics_arguments(command, per_container=name == "actuator")
    return parser


def _add_metrics_arguments(parser: argparse.ArgumentParser, *, per_container: bool) -> None:
    default = os.environ.get(METRICS_PORT_VARIABLE)
    parser.add_argument(
        "--metrics-port", type=int, default=int(default) if default else None,
        help=f"serve /metrics, /healthz and /readyz on this port (default: ${METRICS_PORT_VARIABLE}; off)",
    )  # fmt: skip
    parser.add_argument("--metrics-listen", default="127.0.0.1", help="address for --metrics-port")
    parser.add_argument(
        "--metrics-port-file", type=Path, default=os.environ.get(METRICS_PORT_FILE_VARIABLE) or None,
        help=f"write the bound metrics port here (default: ${METRICS_PORT_FILE_VARIABLE}; none)",
    )  # fmt: skip
    if per_container:
        parser.add_argument(
            "--metrics-per-container", action="store_true",
            help="also count outcomes per container (a vmid label: one series per container)",
        )  # fmt: skip


def _start_metrics(command: str, args: argparse.Namespace) -> None:
    if command not in READY_CHECKS:
        return
    READINESS.expect(READY_CHECKS[command])
    if getattr(args, "metrics_per_container", False):
        from services.actuator.metrics import enable_per_container

        enable_per_container()
    if args.metrics_port is not None:
        server = start_health_server(args.metrics_listen, args.metrics_port)
        if args.metrics_port_file is not None:
            _write_port(args.metrics_port_file, server.server_port)


def _write_port(path: Path, port: int) -> None:
    """Replace `path` whole, so a health check never reads half a number."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(f"{port}\n")
    partial.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(args_list)
    module = importlib.import_module(COMMANDS[args.command][0])
    _start_metrics(args.command, args)
    try:
        result: int = module.run(args)
    except ConfigError as exc:  # every problem of the file, environment and flags at once
        print(str(exc), file=sys.stderr)
        return 2
    except NatsUnreachable as exc:  # a tool run while the broker is down: say so, do not hang
        print(f"lxc-autoscale {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
