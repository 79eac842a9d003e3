"""Pausing: per tier (`pause:` in the config), globally, per node or per container.

Operator pauses live in the KV bucket `autoscale_policy` as JSON
`{"mode": "scale-down", "until": "2026-01-05T18:00:00Z", "reason": "..."}` under the keys
`pause.all`, `pause.<node>.all` and `pause.<node>.<vmid>` (entry and keys:
shared/pauses.py, since the pause command and the console write them too). Pauses
combine: every direction any of them blocks is blocked. An entry whose `until` has
passed blocks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from shared.pauses import (
    PAUSE_KEY_PREFIX,
    PauseEntry,
    PauseMode,
    PauseScope,
    pause_target,
)

__all__ = [
    "NOTHING_BLOCKED", "PAUSE_KEY_PREFIX", "Blocked", "PauseEntry", "PauseMode", "Pauses",
    "blocked_by_tier", "pauses_from",
]  # fmt: skip


@dataclass(frozen=True)
class Blocked:
    up: bool = False
    down: bool = False

    @property
    def everything(self) -> bool:
        return self.up and self.down


NOTHING_BLOCKED = Blocked()
_BY_MODE = {
    "none": NOTHING_BLOCKED,
    "all": Blocked(up=True, down=True),
    "scale-down": Blocked(down=True),
    "scale-up": Blocked(up=True),
}


@dataclass(frozen=True)
class Pauses:
    """Every operator pause currently stored; empty means nothing is paused."""

    global_entry: PauseEntry | None = None
    nodes: Mapping[str, PauseEntry] = field(default_factory=dict)
    containers: Mapping[tuple[str, int], PauseEntry] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.global_entry is None and not self.nodes and not self.containers

    def in_force(self, node: str, vmid: int, at: datetime) -> list[tuple[PauseScope, PauseEntry]]:
        """The active operator pauses over one container, narrowest first."""
        found: list[tuple[PauseScope, PauseEntry | None]] = [
            ("container", self.containers.get((node, vmid))),
            ("node", self.nodes.get(node)),
            ("global", self.global_entry),
        ]
        return [(scope, entry) for scope, entry in found if entry is not None and entry.active(at)]

    def blocked(self, node: str, vmid: int, tier_mode: str, at: datetime) -> Blocked:
        modes = [tier_mode, *(entry.mode for _, entry in self.in_force(node, vmid, at))]
        return Blocked(up=any(_BY_MODE[m].up for m in modes), down=any(_BY_MODE[m].down for m in modes))


def pauses_from(entries: Mapping[str, PauseEntry]) -> Pauses:
    """The stored entries by KV key, as the core reads them (malformed keys are dropped)."""
    global_entry = None
    nodes: dict[str, PauseEntry] = {}
    containers: dict[tuple[str, int], PauseEntry] = {}
    for key, entry in entries.items():
        target = pause_target(key)
        if target is None:
            continue
        if target.node is None:
            global_entry = entry
        elif target.vmid is None:
            nodes[target.node] = entry
        else:
            containers[(target.node, target.vmid)] = entry
    return Pauses(global_entry=global_entry, nodes=nodes, containers=containers)


def blocked_by_tier(tier_mode: str) -> Blocked:
    return _BY_MODE[tier_mode]
