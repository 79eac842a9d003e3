"""Off-peak energy mode: shrink threshold-mode containers to their floor (min_cores,
min_memory) while off-peak, as the original does. Scheduled, so it skips the
stabilization window and cooldowns; pauses and missing data still stop it.

Energy mode lowers the floor; it does not freeze. As in the original, the threshold
step still runs for a resource already at its floor, so a saturated container can grow
off-peak (the original compares with the size read at the start of the cycle, so a
resource above its floor goes to the floor whatever its load).
"""

from __future__ import annotations

from services.decider.policy.proposal import Proposal
from services.decider.policy.resource import ResourceView
from services.decider.policy.stabilization import clear_run
from services.decider.policy.state import ResourceState
from services.decider.policy.threshold import threshold_step


def energy_step(view: ResourceView, usage: float, at: float) -> tuple[Proposal | None, ResourceState]:
    floor = view.bounds.minimum
    if view.current <= floor:
        return threshold_step(view, usage, at)
    acted = clear_run(view.state).model_copy(update={"last_down_at": at})
    proposal = Proposal(
        view.name, view.current, floor, "down", "energy", "off-peak-energy", "off-peak energy mode", acted
    )
    return proposal, view.state
