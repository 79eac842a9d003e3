"""Off-peak energy mode: shrink threshold-mode containers to their floor (min_cores,
min_memory) while off-peak, as the original does. Scheduled, so it skips the
stabilization window and cooldowns; pauses and missing data still stop it."""

from __future__ import annotations

from services.decider.policy.proposal import Proposal, Resource, bounds_for
from services.decider.policy.stabilization import clear_run
from services.decider.policy.state import ResourceState
from shared.config import ScalingPolicy


def energy_step(
    resource: Resource, current: int, state: ResourceState, at: float, policy: ScalingPolicy
) -> Proposal | None:
    floor = bounds_for(resource, policy).minimum
    if current <= floor:
        return None
    acted = clear_run(state).model_copy(update={"last_down_at": at})
    return Proposal(
        resource, current, floor, "down", "energy", "off-peak-energy", "off-peak energy mode", acted
    )
