"""Load a scenario JSON (node + containers + load profiles) and build it.

Format:
    {"node": "pve1", "host_cores": 16, "host_memory_mb": 32768,
     "containers": [{"vmid": 101, "hostname": "web1", "cores": 2, "memory_mb": 1024,
                     "swap_mb": 512, "running": true, "tags": "web", "lock": null,
                     "loop": false,
                     "profile": [{"duration_s": 600, "cpu": 1.9, "memory_mb": 900,
                                  "cache_mb": 100}]}],
     "groups": [{"name": "app", "tag": "app", "loop": false,
                 "profile": [{"duration_s": 60, "cpu": 3.0, "memory_mb": 300}]}],
     "settings": {"boot_s": 8, "clone_s": 2}}

`groups` (optional) are `GroupLoad`s: each phase's `cpu` is the group's total, spread
over its running, booted members; `memory_mb`/`cache_mb` are per member. `settings`
(optional) are `simnode.settings` knobs written when the node is built.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simnode import settings
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import GroupLoad, LoadProfile, Phase

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_SPEC_KEYS = ("swap_mb", "running", "tags", "lock", "cpulimit", "description")


@dataclass(frozen=True)
class Scenario:
    node: str
    host_cores: int
    host_memory_mb: int
    containers: tuple[ContainerSpec, ...]
    profiles: dict[int, LoadProfile]
    groups: tuple[GroupLoad, ...] = ()
    settings: tuple[tuple[str, float], ...] = ()

    def build(self, root: Path) -> SimNode:
        node = build_node(
            root,
            node_name=self.node,
            host_cores=self.host_cores,
            host_memory_mb=self.host_memory_mb,
            containers=list(self.containers),
        )
        knobs = dict(self.settings)
        if knobs:
            settings.configure(
                node.root,
                boot_s=knobs.get("boot_s"),
                clone_s=knobs.get("clone_s"),
                pvestatd_period_s=knobs.get("pvestatd_period_s"),
            )
        return node


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


def _container(raw: dict[str, Any]) -> tuple[ContainerSpec, LoadProfile | None]:
    extra = {k: raw[k] for k in _SPEC_KEYS if raw.get(k) is not None}
    spec = ContainerSpec(
        vmid=int(raw["vmid"]),
        hostname=str(raw["hostname"]),
        cores=int(raw["cores"]),
        memory_mb=int(raw["memory_mb"]),
        **extra,
    )
    if raw.get("group_member"):
        return spec, None  # its load comes from its group (`groups`), not a profile of its own
    phases = tuple(_phase(p) for p in raw.get("profile") or [])
    if not phases:
        phases = (Phase(60.0, 0.0, 0, 0),)  # no profile: an idle container
    return spec, LoadProfile(phases, loop=bool(raw.get("loop", False)))


_SETTINGS = ("boot_s", "clone_s", "pvestatd_period_s")


def _group(raw: dict[str, Any]) -> GroupLoad:
    phases = tuple(_phase(p) for p in raw["profile"])
    return GroupLoad(
        str(raw["name"]), str(raw.get("tag", raw["name"])), LoadProfile(phases, bool(raw.get("loop")))
    )


def parse_scenario(data: dict[str, Any]) -> Scenario:
    try:
        pairs = [_container(c) for c in data["containers"]]
        knobs = data.get("settings") or {}
        unknown = sorted(set(knobs) - set(_SETTINGS))
        if unknown:
            raise ValueError(f"unknown scenario settings {unknown}; known: {list(_SETTINGS)}")
        return Scenario(
            node=str(data.get("node", "pve1")),
            host_cores=int(data["host_cores"]),
            host_memory_mb=int(data["host_memory_mb"]),
            containers=tuple(spec for spec, _ in pairs),
            profiles={spec.vmid: profile for spec, profile in pairs if profile is not None},
            groups=tuple(_group(g) for g in data.get("groups") or []),
            settings=tuple((k, float(v)) for k, v in sorted(knobs.items())),
        )
    except KeyError as exc:
        raise ValueError(f"scenario is missing the key {exc}") from None


def load_scenario(path: Path) -> Scenario:
    return parse_scenario(json.loads(Path(path).read_text(encoding="utf-8")))


def build_scenario(root: Path, path: Path) -> tuple[SimNode, dict[int, LoadProfile]]:
    """Build the node a scenario file describes; returns it with its load profiles."""
    scenario = load_scenario(path)
    return scenario.build(root), scenario.profiles
