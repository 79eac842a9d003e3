"""Whether an intent may run at all, before anything is read. Pure.

An intent must be for our node, its target must pass the command model (within the
host) and the bounds of the container's tier (a second line of defence behind the
decider, against a forged or buggy intent), and it must fit in the journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.actuator.commands import CommandRefused, HostLimits, Resize, resize
from shared.models import ResourceSize, ScaleIntent

# The in-flight journal entry holds the whole intent as JSON, well under NATS' 1 MB
# max_payload (JSON escapes can make it several times the intent's msgpack size).
MAX_INTENT_JSON_BYTES = 256 * 1024


@dataclass(frozen=True)
class Rejected:
    code: str
    message: str


@dataclass(frozen=True)
class SizeBounds:
    """A tier's limits for one container (memory_max None: only the host limits it)."""

    cores_min: int
    cores_max: int
    memory_min_mb: int
    memory_max_mb: int | None


def screen(intent: ScaleIntent, node: str, limits: HostLimits, bounds: SizeBounds) -> Resize | Rejected:
    """The command an intent asks for, or why it must never run."""
    if intent.node != node:
        return Rejected("wrong-node", f"intent for node {intent.node} reached the actuator of {node}")
    size = len(intent.model_dump_json())
    if size > MAX_INTENT_JSON_BYTES:
        return Rejected("too-large", f"the intent is {size} bytes as JSON, over {MAX_INTENT_JSON_BYTES}")
    try:
        command = resize(intent.vmid, intent.target.cores, intent.target.memory_mb, limits)
    except CommandRefused as exc:
        return Rejected(exc.code, str(exc))
    outside = _outside(intent.target, bounds)
    if outside:
        return Rejected("outside-tier", f"target {size_text(intent.target)} is outside the tier: {outside}")
    return command


def _outside(target: ResourceSize, bounds: SizeBounds) -> str:
    if not bounds.cores_min <= target.cores <= bounds.cores_max:
        return f"cores must be within {bounds.cores_min}..{bounds.cores_max}"
    if target.memory_mb < bounds.memory_min_mb:
        return f"memory must be at least {bounds.memory_min_mb} MB"
    if bounds.memory_max_mb is not None and target.memory_mb > bounds.memory_max_mb:
        return f"memory must be at most {bounds.memory_max_mb} MB"
    return ""


def is_expired(intent: ScaleIntent, now: datetime) -> bool:
    return now >= intent.expires_at


def size_text(size: ResourceSize) -> str:
    return f"cores {size.cores}, memory {size.memory_mb} MB"
