"""The operator's dry-run switch, stored in the KV bucket `autoscale_policy` under
`dry_run` beside the pauses: `{"enabled": true, "set_at": "...", "reason": "..."}`.

While the entry exists it wins over the configuration's `DEFAULT.dry_run`; deleting it
returns every decider replica to the file's setting. Shared because the deciders
follow it, and `lxc-autoscale dry-run` and the console write it.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Literal

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

DRY_RUN_KEY = "dry_run"
DryRunSwitch = Literal["on", "off", "config"]  # `config`: remove the switch, the file decides


class DryRunEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool
    set_at: AwareDatetime | None = None
    reason: str = Field("", max_length=500)


UNREADABLE = DryRunEntry(enabled=True, reason="the stored entry is unreadable: dry-run until it is fixed")


def read_dry_run(raw: bytes | None) -> DryRunEntry | None:
    """The stored switch; None when absent (the file decides). An unreadable entry means
    dry-run: whoever wrote it meant to switch something, and acting is the risky guess."""
    if not raw:
        return None
    try:
        return DryRunEntry.model_validate_json(raw)
    except ValidationError:
        return UNREADABLE


def effective_dry_run(entry: DryRunEntry | None, configured: bool) -> tuple[bool, str]:
    """Whether intents are dry runs now, and where that comes from."""
    if entry is None:
        return configured, "configuration"
    return entry.enabled, "operator"


async def store_dry_run(
    kv: KeyValue, switch: DryRunSwitch, now: datetime, reason: str = ""
) -> DryRunEntry | None:
    """Write the switch to the `autoscale_policy` bucket (`config` deletes it); the entry
    now stored. ValueError for a reason too long."""
    if switch == "config":
        with contextlib.suppress(KeyNotFoundError):
            await kv.delete(DRY_RUN_KEY)
        return None
    entry = DryRunEntry(enabled=switch == "on", set_at=now, reason=reason)
    await kv.put(DRY_RUN_KEY, entry.model_dump_json().encode())
    return entry
