"""Named failpoints: let a test stop a service at an exact step. Inert unless enabled.

A service marks a step with `await failpoints.reach("actuator.after-command")`. Nothing
happens unless a test armed that name, either in-process with `armed(name, action)` or,
for a service started as a separate process, through the environment:

    AUTOSCALE_FAILPOINTS="actuator.after-command=kill"

which `arm_from_environment` reads once at start-up (and logs loudly). Actions:

- `kill`: SIGKILL the own process (a crash, nothing flushed, nothing cleaned up);
- `pause`: never return (a frozen process: no ack, no publish, no heartbeat of its own);
- `raise`: raise `FailpointError` (an unexpected exception from that step);
- `stop`: SIGSTOP the own process, once (the whole process frozen, as a paused VM or a
  swap storm freezes it: no task runs, no heartbeat, no lease renewal); after SIGCONT
  the step goes on as if nothing happened.

Every name is declared in `POINTS` with what has just happened when it is reached, so a
misspelt name in a test fails at once instead of arming nothing; docs/failpoints.md
lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Literal, get_args

log = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "AUTOSCALE_FAILPOINTS"
Action = Literal["kill", "pause", "raise", "stop"]

POINTS: dict[str, str] = {
    "actuator.after-backup": "the container's original size is saved, nothing changed yet",
    "actuator.after-journal": "the in-flight journal entry is written, pct set not run yet",
    "actuator.after-command": "pct set has returned, the change is not read back yet",
    "actuator.after-decide": "the intent's event is stored in the journal, not published",
    "actuator.after-publish": "the event is in the events stream, the intent is not acked",
    "actuator.after-ack": "the intent is acknowledged and gone from the work queue",
    "group.after-reserve-id": "a group scale-out reserved its clone's id, not journalled yet",
    "group.after-reserve-ip": "a group scale-out reserved its clone's address, not journalled yet",
    "group.after-snapshot": "pct snapshot of the group's source ran, not journalled yet",
    "group.after-clone": "pct clone ran, the clone is not tagged and not journalled yet",
    "group.after-tags": "the clone's tags are set, not journalled yet",
    "group.after-net0": "the clone's net0 is set, not journalled yet",
    "group.after-delete-snapshot": "the source's snapshot is deleted, not journalled yet",
    "group.after-start": "the clone is started, not journalled yet",
    "group.after-stop": "a group scale-in stopped its member, not journalled yet",
    "group.after-record-membership": "the membership record is updated, not journalled yet",
    "decider.after-state-write": "the decider's state is written, its intents not published",
    "notifier.after-send": "a notification's delivery has ended (sent or given up), not recorded",
    "notifier.after-record": "the delivery is recorded, the event not acknowledged",
}

_armed: dict[str, Action] = {}
hits: Counter[str] = Counter()  # how often each armed point was reached (for tests)


class FailpointError(RuntimeError):
    """Raised by a failpoint armed with `raise`."""


def enable(name: str, action: Action) -> None:
    if name not in POINTS:
        raise ValueError(f"unknown failpoint {name!r}; known: {', '.join(sorted(POINTS))}")
    if action not in get_args(Action):
        raise ValueError(f"unknown failpoint action {action!r}; use kill, pause, raise or stop")
    _armed[name] = action


def disable(name: str) -> None:
    _armed.pop(name, None)


@contextlib.contextmanager
def armed(name: str, action: Action) -> Iterator[None]:
    """Arm one failpoint for the duration of a block (in-process tests)."""
    enable(name, action)
    try:
        yield
    finally:
        disable(name)


def arm_from_environment(environ: Mapping[str, str]) -> None:
    """Arm what `AUTOSCALE_FAILPOINTS` names (`name=action,name=action`)."""
    spec = environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if not spec:
        return
    for item in spec.split(","):
        name, _, action = item.strip().partition("=")
        enable(name, action)  # type: ignore[arg-type]  # checked inside
    log.warning("failpoints armed (tests only)", extra={"event": "failpoints_armed", "points": spec})


async def reach(name: str) -> None:
    """Mark a step. Returns at once unless a test armed this name."""
    action = _armed.get(name)
    if action is None:
        return
    hits[name] += 1
    if action == "kill":
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "pause":
        await asyncio.Event().wait()
    if action == "stop":
        disable(name)
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    raise FailpointError(f"failpoint {name} reached")
