"""What to do with an intent, given the container's current size. Pure.

The intent names a target and the size it expects to find. Exactly one of these holds:
the change was already made by this very intent before a crash (recover: report it),
the container already has the target (skip), it no longer has the expected size (skip,
stale), the intent is a dry run (skip, report only), or the change goes ahead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from services.actuator.commands import CommandRefused, HostLimits, Resize, resize
from shared.models import ResourceSize, ScaleIntent


@dataclass(frozen=True)
class Rejected:
    code: str
    message: str


def screen(intent: ScaleIntent, node: str, limits: HostLimits) -> Resize | Rejected:
    """The command an intent asks for, or why it must never run."""
    if intent.node != node:
        return Rejected("wrong-node", f"intent for node {intent.node} reached the actuator of {node}")
    try:
        return resize(intent.vmid, intent.target.cores, intent.target.memory_mb, limits)
    except CommandRefused as exc:
        return Rejected(exc.code, str(exc))


def is_expired(intent: ScaleIntent, now: datetime) -> bool:
    return now >= intent.expires_at


Verdict = Literal["recover", "already-applied", "stale", "dry-run", "apply"]


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    message: str


def decide(intent: ScaleIntent, current: ResourceSize, journal_is_this_intent: bool) -> Decision:
    if current == intent.target:
        if journal_is_this_intent:
            return Decision("recover", "the change was made before a restart; reporting it now")
        return Decision("already-applied", f"the container already has {_size(current)}")
    if current != intent.expected:
        return Decision("stale", f"expected {_size(intent.expected)} but the container has {_size(current)}")
    if intent.dry_run:
        return Decision("dry-run", f"dry run: would set {_size(current)} -> {_size(intent.target)}")
    return Decision("apply", "")


def _size(size: ResourceSize) -> str:
    return f"cores {size.cores}, memory {size.memory_mb} MB"
