"""Operator pauses as stored in the KV bucket `autoscale_policy`: the entry and its keys.

Shared because three programs use them: the deciders follow them, and `lxc-autoscale
pause` and the console write them. A value is JSON
`{"mode": "scale-down", "until": "2026-01-05T18:00:00Z", "reason": "..."}` under
`pause.all` (every container), `pause.<node>.all` (every container of one node) or
`pause.<node>.<vmid>` (one container). A node's key ends in `all`, never in digits, so
it cannot be read as a container's, whatever the node is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.validation import NODE_NAME_PATTERN, check_node_name, check_vmid

PauseMode = Literal["none", "all", "scale-down", "scale-up"]
PauseScope = Literal["global", "node", "container"]
GLOBAL_PAUSE_KEY = "pause.all"
PAUSE_KEY_PREFIX = "pause."
_WHOLE_NODE = "all"


class PauseEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: PauseMode
    until: AwareDatetime | None = None
    reason: str = Field("", max_length=500)

    def active(self, at: datetime) -> bool:
        return self.mode != "none" and (self.until is None or at < self.until)


@dataclass(frozen=True)
class PauseTarget:
    """What one key pauses: everything (no node), a node (no vmid) or one container."""

    node: str | None = None
    vmid: int | None = None

    @property
    def scope(self) -> PauseScope:
        return "global" if self.node is None else "node" if self.vmid is None else "container"


def container_pause_key(node: str, vmid: int) -> str:
    return f"{PAUSE_KEY_PREFIX}{check_node_name(node)}.{check_vmid(vmid)}"


def node_pause_key(node: str) -> str:
    return f"{PAUSE_KEY_PREFIX}{check_node_name(node)}.{_WHOLE_NODE}"


def pause_key(node: str | None, vmid: int | None) -> str:
    """The key for a pause of everything (neither), one node (node) or one container (both);
    ValueError for a vmid without its node or an invalid name."""
    if node is None:
        if vmid is not None:
            raise ValueError("a container's pause needs its node: vmids are keyed per node")
        return GLOBAL_PAUSE_KEY
    return node_pause_key(node) if vmid is None else container_pause_key(node, vmid)


def pause_target(key: str) -> PauseTarget | None:
    """What a stored key pauses; None for a key that is not a valid pause key."""
    if key == GLOBAL_PAUSE_KEY:
        return PauseTarget()
    if not key.startswith(PAUSE_KEY_PREFIX):
        return None
    node, _, rest = key[len(PAUSE_KEY_PREFIX) :].partition(".")
    if not NODE_NAME_PATTERN.fullmatch(node):
        return None
    if rest == _WHOLE_NODE:
        return PauseTarget(node=node)
    return PauseTarget(node=node, vmid=int(rest)) if rest.isdigit() else None
