"""`lxc-autoscale decide`: run the decision core once on a sample file and print JSON.

    lxc-autoscale decide --config autoscale.yaml --sample sample.json \
        [--state state.json] [--now 2026-01-05T12:00:05Z]

The sample is a NodeSample as JSON (`NodeSample.model_dump_json()`); the state file,
if given, maps KV keys (`pve1.101`) or vmids to stored container state, in the shape
this command prints under `state_changes`, so runs can be chained. `--now` defaults
to the sample's `taken_at` (a sample is never stale to itself).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.decider.policy import ContainerState, PolicyView, decide
from shared import subjects
from shared.config import ConfigError, load_config
from shared.models import NodeSample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="YAML configuration")
    parser.add_argument("--sample", type=Path, required=True, help="a NodeSample as JSON")
    parser.add_argument("--state", type=Path, help='stored state as JSON: {"pve1.101": {...}}')
    parser.add_argument("--now", type=datetime.fromisoformat, help="decider time (ISO 8601, with zone)")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        sample = NodeSample.model_validate_json(_read(args.sample))
        states = _states(args.state, sample.node) if args.state else {}
    except (ConfigError, ValidationError, ValueError, OSError) as exc:
        print(f"lxc-autoscale decide: {exc}", file=sys.stderr)
        return 2
    now = args.now or sample.taken_at
    if now.tzinfo is None:
        print("lxc-autoscale decide: --now needs a time zone, e.g. 2026-01-05T12:00:00Z", file=sys.stderr)
        return 2
    decision = decide(sample, PolicyView(config), states, now)
    output: dict[str, Any] = {
        "intents": [i.model_dump(mode="json") for i in decision.intents],
        "state_changes": {
            subjects.state_key(sample.node, vmid): state.model_dump(mode="json", exclude_defaults=True)
            for vmid, state in decision.state_changes.items()
        },
        "notes": {str(vmid): note for vmid, note in decision.notes.items()},
        "ignored": decision.ignored,
        "policy_version": PolicyView(config).version,
    }
    print(json.dumps(output, indent=2, ensure_ascii=False))
    return 0


def _read(path: Path) -> str:
    return path.read_text()


def _states(path: Path, node: str) -> dict[int, ContainerState]:
    raw = json.loads(_read(path))
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object of state by key")
    states = {}
    for key, value in raw.items():
        owner, _, vmid = str(key).rpartition(".")
        if owner and owner != node:
            continue
        if not vmid.isdigit():
            raise ValueError(f"{path}: key {key!r} is neither <node>.<vmid> nor <vmid>")
        states[int(vmid)] = ContainerState.model_validate(value)
    return states
