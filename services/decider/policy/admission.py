"""Admission control: what the node can still give, after the reserve and after what
its running containers already hold.

capacity = (host - reserve) x overcommit_ratio, and the budget for increases is
capacity - allocated to running containers. The reserve is applied once (the original
applies it twice) and the cores reserve is the original's max(1, int(cores x pct/100)),
except that 0 % reserves nothing. Decreases decided in the same sample are not
credited back: they are not applied yet, and an increase must never count on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.decider.policy.resource import Resource
from shared.config import Defaults
from shared.models import HostTotals


def reserved_cores(host_cores: int, reserve_cpu_percent: float) -> int:
    if reserve_cpu_percent <= 0:
        return 0
    return max(1, int(host_cores * reserve_cpu_percent / 100))


@dataclass
class Budget:
    """Cores and MB still free on the node; increases granted in this sample consume it."""

    left: dict[Resource, int]

    @classmethod
    def for_host(cls, host: HostTotals, defaults: Defaults) -> Budget:
        ratio = defaults.overcommit_ratio
        cores = int((host.cores - reserved_cores(host.cores, defaults.reserve_cpu_percent)) * ratio)
        memory = int(max(0, host.memory_mb - defaults.reserve_memory_mb) * ratio)
        return cls(
            {
                "cpu": cores - host.allocated_cores_running,
                "memory": memory - host.allocated_memory_mb_running,
            }
        )

    def free(self, resource: Resource) -> int:
        return max(0, self.left[resource])

    def take(self, resource: Resource, amount: int) -> None:
        if amount > 0:
            self.left[resource] -= amount
