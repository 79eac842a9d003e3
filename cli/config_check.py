"""`lxc-autoscale config check FILE`: validate a configuration and show what it means."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.config import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    check = sub.add_parser("check", help="validate FILE; exit 0 when it is usable")
    check.add_argument("file", type=Path)
    check.add_argument("--strict", action="store_true", help="treat warnings as errors")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    tiers = ", ".join(
        f"{name} ({len(tier.lxc_containers)} containers)" for name, tier in config.tiers.items()
    )
    print(f"{args.file}: OK (policy version {config.policy_version})")
    print(f"  tiers: {tiers or 'none'}; ignored: {config.defaults.ignore_lxc or 'none'}")
    print(f"  horizontal groups: {len(config.groups)}; dry run: {config.defaults.dry_run}")
    return 1 if (args.strict and config.warnings) else 0
