"""Pausing: per tier (`pause:` in the config), globally, or per container.

Global and per-container pauses live in the KV bucket `autoscale_policy` as JSON
`{"mode": "scale-down", "until": "2026-01-05T18:00:00Z", "reason": "..."}` under the keys
`pause.all` and `pause.<node>.<vmid>`. Pauses combine: every direction any of them
blocks is blocked. An entry whose `until` has passed blocks nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

PauseMode = Literal["none", "all", "scale-down", "scale-up"]
GLOBAL_PAUSE_KEY = "pause.all"
PAUSE_KEY_PREFIX = "pause."


class PauseEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: PauseMode
    until: AwareDatetime | None = None
    reason: str = Field("", max_length=500)

    def active(self, at: datetime) -> bool:
        return self.mode != "none" and (self.until is None or at < self.until)


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


def container_pause_key(node: str, vmid: int) -> str:
    return f"{PAUSE_KEY_PREFIX}{node}.{vmid}"


@dataclass(frozen=True)
class Pauses:
    """Every operator pause currently stored; empty means nothing is paused."""

    global_entry: PauseEntry | None = None
    containers: Mapping[tuple[str, int], PauseEntry] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.global_entry is None and not self.containers

    def blocked(self, node: str, vmid: int, tier_mode: str, at: datetime) -> Blocked:
        modes = [tier_mode]
        for entry in (self.global_entry, self.containers.get((node, vmid))):
            if entry is not None and entry.active(at):
                modes.append(entry.mode)
        return Blocked(
            up=any(_BY_MODE[m].up for m in modes), down=any(_BY_MODE[m].down for m in modes)
        )


def blocked_by_tier(tier_mode: str) -> Blocked:
    return _BY_MODE[tier_mode]
