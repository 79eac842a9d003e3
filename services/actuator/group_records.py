"""The journal of one group operation: what has been done so far. Pure data (JSON in KV).

Written after every step of a scale-out or scale-in, before the next one starts, so a
redelivered intent knows the new container's id, its address and which steps ran, and
the plan (group_plan.py) can resume or clean up from there.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.validation import Vmid

StepName = Annotated[str, Field(max_length=32)]


class StepFailure(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    step: StepName
    code: Annotated[str, Field(max_length=64)]
    message: Annotated[str, Field(max_length=1000)] = ""


class Progress(BaseModel):
    """How far one group intent got. Every field only ever moves forward."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    new_vmid: Vmid | None = None  # reserved in KV (scale-out)
    ip: Annotated[str, Field(max_length=43)] | None = None  # reserved address, `a.b.c.d/p`
    clone_started: bool = False  # written just before `pct clone` runs
    steps: tuple[StepName, ...] = ()  # steps that succeeded, in order (the event lists them)
    failure: StepFailure | None = None  # the step that failed for good; cleanup follows
    cleanup_tried: tuple[StepName, ...] = ()  # cleanup steps attempted once each
    abandoned: tuple[Vmid, ...] = ()  # ids found taken by someone else after reserving them

    def did(self, step: str) -> Progress:
        return self.model_copy(update={"steps": (*self.steps, step)})

    def tried(self, step: str) -> Progress:
        return self.model_copy(update={"cleanup_tried": (*self.cleanup_tried, step)})
