"""Load a scenario JSON (node + containers + load profiles) and build it.

Format:
    {"node": "pve1", "host_cores": 16, "host_memory_mb": 32768,
     "containers": [{"vmid": 101, "hostname": "web1", "cores": 2, "memory_mb": 1024,
                     "swap_mb": 512, "running": true, "tags": "web", "lock": null,
                     "loop": false,
                     "profile": [{"duration_s": 600, "cpu": 1.9, "memory_mb": 900,
                                  "cache_mb": 100}]}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import LoadProfile, Phase

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_SPEC_KEYS = ("swap_mb", "running", "tags", "lock", "cpulimit", "description")


@dataclass(frozen=True)
class Scenario:
    node: str
    host_cores: int
    host_memory_mb: int
    containers: tuple[ContainerSpec, ...]
    profiles: dict[int, LoadProfile]

    def build(self, root: Path) -> SimNode:
        return build_node(
            root,
            node_name=self.node,
            host_cores=self.host_cores,
            host_memory_mb=self.host_memory_mb,
            containers=list(self.containers),
        )


def scenario_path(name: str) -> Path:
    """Path of a bundled scenario, e.g. `scenario_path("demo")`."""
    return SCENARIO_DIR / f"{name}.json"


def _phase(raw: dict[str, Any]) -> Phase:
    return Phase(
        duration_s=float(raw["duration_s"]),
        cpu_cores_demand=float(raw["cpu"]),
        memory_mb_demand=int(raw["memory_mb"]),
        cache_mb=int(raw.get("cache_mb", 0)),
    )


def _container(raw: dict[str, Any]) -> tuple[ContainerSpec, LoadProfile]:
    extra = {k: raw[k] for k in _SPEC_KEYS if raw.get(k) is not None}
    spec = ContainerSpec(
        vmid=int(raw["vmid"]),
        hostname=str(raw["hostname"]),
        cores=int(raw["cores"]),
        memory_mb=int(raw["memory_mb"]),
        **extra,
    )
    phases = tuple(_phase(p) for p in raw.get("profile") or [])
    if not phases:
        phases = (Phase(60.0, 0.0, 0, 0),)  # no profile: an idle container
    return spec, LoadProfile(phases, loop=bool(raw.get("loop", False)))


def parse_scenario(data: dict[str, Any]) -> Scenario:
    try:
        pairs = [_container(c) for c in data["containers"]]
        return Scenario(
            node=str(data.get("node", "pve1")),
            host_cores=int(data["host_cores"]),
            host_memory_mb=int(data["host_memory_mb"]),
            containers=tuple(spec for spec, _ in pairs),
            profiles={spec.vmid: profile for spec, profile in pairs},
        )
    except KeyError as exc:
        raise ValueError(f"scenario is missing the key {exc}") from None


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(json.loads(Path(path).read_text(encoding="utf-8")))


def build_scenario(root: Path, path: Path) -> tuple[SimNode, dict[int, LoadProfile]]:
    """Build the node a scenario file describes; returns it with its load profiles."""
    scenario = load_scenario(path)
    return scenario.build(root), scenario.profiles
