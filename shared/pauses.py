"""Operator pauses as stored in the KV bucket `autoscale_policy`: the entry and its keys.

Shared because three programs use them: the deciders follow them, and `lxc-autoscale
pause` and the console write them. A value is JSON
`{"mode": "scale-down", "until": "2026-01-05T18:00:00Z", "reason": "..."}` under
`pause.all` (every container) or `pause.<node>.<vmid>` (one container).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.validation import check_node_name, check_vmid

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


def container_pause_key(node: str, vmid: int) -> str:
    return f"{PAUSE_KEY_PREFIX}{check_node_name(node)}.{check_vmid(vmid)}"


def pause_target(key: str) -> tuple[str, int] | None:
    """(node, vmid) of a per-container key; None for the global key or a malformed one."""
    if key == GLOBAL_PAUSE_KEY or not key.startswith(PAUSE_KEY_PREFIX):
        return None
    node, _, vmid = key[len(PAUSE_KEY_PREFIX) :].partition(".")
    return (node, int(vmid)) if node and vmid.isdigit() else None
