"""OOM kills since the last sample are memory pressure (as VPA bumps memory after an
OOMKilled container): grow memory by at least one step even when memory % is below
the upper threshold — a killed process has just given its memory back, so the % after
a kill says little. The tier's maximum caps it; admission (host capacity) and pauses
still apply; cooldowns do not, since the container is being killed now."""

from __future__ import annotations

from services.decider.policy.proposal import Proposal
from services.decider.policy.resource import ResourceView
from services.decider.policy.stabilization import clear_run


def oom_step(view: ResourceView, at: float) -> Proposal | None:
    usage = view.usage if view.usage is not None else 0.0
    wanted = view.grown(usage)  # one step: at least memory_min_increment x behaviour
    target = view.bounds.clamp(wanted)
    if target <= view.current:
        return None
    acted = clear_run(view.state).model_copy(update={"last_up_at": at, "up_since": None})
    notes = (
        (f"capped at the tier maximum {view.bounds.maximum}, step wanted {wanted}",)
        if wanted > target
        else ()
    )
    return Proposal(
        view.name,
        view.current,
        target,
        "up",
        "oom",
        "memory-oom-kill",
        f"{view.oom_kills} OOM kill(s) since the last sample",
        acted,
        notes,
        facts={"oom_kills": view.oom_kills},
    )
