"""The actuator's own KV records: original sizes for rollback, the in-flight journal, the node lease.

Stored as JSON so an operator can read them with any NATS tool.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

from shared.models import ResourceSize, ScaleEvent, ScaleIntent


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupRecord(_Record):
    """A container's size before the autoscaler first changed it (written once, never overwritten)."""

    node: str
    vmid: int
    original: ResourceSize
    saved_at: AwareDatetime
    intent_id: str


class JournalEntry(_Record):
    """The container's in-flight entry (key `<node>.<vmid>`), written just before `pct set`
    and deleted once the intent's outcome is stored.

    A redelivered intent that finds its own entry here knows the command may have run, and
    compares the container with the target to learn whether the change was made.
    """

    intent: ScaleIntent
    before: ResourceSize
    started_at: AwareDatetime


class OutcomeRecord(_Record):
    """The event decided for one intent, stored before it is published (key
    `<node>.<vmid>.<intent_id>`). A redelivered intent republishes this event, so an
    intent has exactly one outcome; `published` spares the republish once it is stored."""

    event: ScaleEvent
    published: bool = False


class LeaseRecord(_Record):
    """The node's lease (key `<node>.leader`): which actuator process applies the node's
    intents. Only its KV revision matters to the protocol (leadership.py); the fields
    say who holds it, for an operator."""

    holder: str
    acquired_at: AwareDatetime
    renewed_at: AwareDatetime
