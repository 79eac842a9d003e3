"""Start-up configuration shared by every service's command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from shared.config import AutoscaleConfig, ConfigError, load_config, parse_config
from shared.logs import setup_logging
from shared.nats_settings import NatsSettings

DEFAULT_CONFIG_PATH = Path("/etc/lxc_autoscale/lxc_autoscale.yaml")
log = logging.getLogger(__name__)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("LXC_AUTOSCALE_CONFIG", DEFAULT_CONFIG_PATH)),
        help="YAML configuration (default: $LXC_AUTOSCALE_CONFIG or %(default)s)",
    )
    parser.add_argument("--nats-url", help="NATS server URL(s), overrides NATS_URL and the file")
    parser.add_argument(
        "--log-format", choices=("json", "human"), default=None, help="default: human on a terminal"
    )
    parser.add_argument("--log-level", default=os.environ.get("LXC_AUTOSCALE_LOG_LEVEL", "INFO"))


def start_service(service: str, args: argparse.Namespace) -> AutoscaleConfig:
    """Set up logging and load the configuration, or exit with the problems listed."""
    json_lines = None if args.log_format is None else args.log_format == "json"
    setup_logging(service, json_lines=json_lines, level=args.log_level)
    config = load_or_exit(args.config)
    if args.nats_url:
        config = config.model_copy(
            update={"nats": NatsSettings.from_env(config.nats).model_copy(update={"url": args.nats_url})}
        )
    for warning in config.warnings:
        log.warning("%s", warning, extra={"event": "config_warning"})
    return config


def load_or_exit(path: Path) -> AutoscaleConfig:
    if not path.exists() and path == DEFAULT_CONFIG_PATH:
        log.warning("no configuration at %s, using the built-in defaults", path)
        config = parse_config({}, path="<defaults>")
        return config.model_copy(update={"nats": NatsSettings.from_env(config.nats)})
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(2) from exc
    return config.model_copy(update={"nats": NatsSettings.from_env(config.nats)})
