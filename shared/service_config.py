"""Start-up configuration shared by every service's command line.

One precedence rule, applied in one place (`resolve`): built-in defaults, then the
YAML file, then the environment (`${VAR}` expansion, `LXC_AUTOSCALE_*` and `NATS_*`
overrides), then command-line flags. A service passes its flags as section updates
(`{"collector": {"node": "pve1"}}`); flags left unset (None) change nothing.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from shared.config import AutoscaleConfig, ConfigError, load_config, parse_config
from shared.logs import setup_logging

DEFAULT_CONFIG_PATH = Path("/etc/lxc_autoscale/lxc_autoscale.yaml")
CONFIG_ENV = "LXC_AUTOSCALE_CONFIG"
log = logging.getLogger(__name__)

# Section name (as in AutoscaleConfig) -> setting -> value from a flag (None: not given).
Flags = Mapping[str, Mapping[str, object]]


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help=f"YAML configuration (default: ${CONFIG_ENV} or {DEFAULT_CONFIG_PATH})",
    )
    parser.add_argument("--nats-url", help="NATS server URL(s), overrides NATS_URL and the file")
    parser.add_argument(
        "--log-format", choices=("json", "human"), default=None, help="default: human on a terminal"
    )
    parser.add_argument("--log-level", default=None, help="default: $LXC_AUTOSCALE_LOG_LEVEL or INFO")


def config_path(flag: Path | None, env: Mapping[str, str]) -> Path:
    """--config, else $LXC_AUTOSCALE_CONFIG, else the standard location."""
    return flag or Path(env.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def resolve(path: Path, *, env: Mapping[str, str], flags: Flags | None = None) -> AutoscaleConfig:
    """Defaults -> file -> environment -> flags. Raises ConfigError listing every problem.

    A missing file at the standard location means "built-in defaults" (with a warning);
    a missing file named explicitly is an error."""
    if path == DEFAULT_CONFIG_PATH and not path.exists():
        config = parse_config({}, path="<defaults>", env=env)
        config.warnings.append(f"no configuration at {path}, using the built-in defaults")
    else:
        config = load_config(path, env=env)
    return _with_flags(config, flags or {})


def _with_flags(config: AutoscaleConfig, flags: Flags) -> AutoscaleConfig:
    updates: dict[str, BaseModel] = {}
    problems: list[str] = []
    for section, values in flags.items():
        given = {k: v for k, v in values.items() if v is not None}
        if not given:
            continue
        current: BaseModel = getattr(config, section)
        try:
            updates[section] = type(current).model_validate({**current.model_dump(), **given})
        except ValidationError as exc:
            problems.extend(
                f"{section}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
    if problems:
        raise ConfigError("command line", problems)
    return config.model_copy(update=updates)


def start_service(service: str, args: argparse.Namespace, flags: Flags | None = None) -> AutoscaleConfig:
    """Set up logging and resolve the configuration; a ConfigError (every problem listed)
    reaches `cli.main`, which prints it and exits 2.

    `--nats-url` is common to every command; `flags` holds the command's own."""
    env = os.environ
    json_lines = None if args.log_format is None else args.log_format == "json"
    level = args.log_level or env.get("LXC_AUTOSCALE_LOG_LEVEL", "INFO")
    setup_logging(service, json_lines=json_lines, level=level)
    all_flags = {**(flags or {}), "nats": {"url": args.nats_url}}
    config = resolve(config_path(args.config, env), env=env, flags=all_flags)
    for warning in config.warnings:
        log.warning("%s", warning, extra={"event": "config_warning"})
    return config
