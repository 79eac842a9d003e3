"""Admission control: what the node can still give, after the reserve and after what
its running containers already hold.

capacity = (host - reserve) x overcommit_ratio, and the budget for increases is
capacity - allocated to running containers. The host's size comes from
`DECIDER.host_sizes` when set (else the sample's claim), and the allocation is never
taken as less than the running containers in the sample hold. The reserve is applied once (the original
applies it twice) and the cores reserve is the original's max(1, int(cores x pct/100)),
except that 0 % reserves nothing. Decreases decided in the same sample are not
credited back: they are not applied yet, and an increase must never count on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.decider.policy.resource import Resource
from shared.config import Defaults, HostSize
from shared.models import NodeSample


def reserved_cores(host_cores: int, reserve_cpu_percent: float) -> int:
    if reserve_cpu_percent <= 0:
        return 0
    return max(1, int(host_cores * reserve_cpu_percent / 100))


@dataclass
class Budget:
    """Cores and MB still free on the node; increases granted in this sample consume it."""

    left: dict[Resource, int]

    @classmethod
    def for_node(cls, sample: NodeSample, configured: HostSize | None, defaults: Defaults) -> Budget:
        """The host's size from the configuration when it is there (a sample's totals are
        only its collector's claim); what is allocated is never less than the running
        containers of the sample hold."""
        host = sample.host
        size = configured or HostSize(cores=host.cores, memory_mb=host.memory_mb)
        running = [c for c in sample.containers if c.status == "running"]
        used_cores = max(host.allocated_cores_running, sum(c.cores for c in running))
        used_memory = max(host.allocated_memory_mb_running, sum(c.memory_mb for c in running))
        ratio = defaults.overcommit_ratio
        cores = int((size.cores - reserved_cores(size.cores, defaults.reserve_cpu_percent)) * ratio)
        memory = int(max(0, size.memory_mb - defaults.reserve_memory_mb) * ratio)
        return cls({"cpu": cores - used_cores, "memory": memory - used_memory})

    def free(self, resource: Resource) -> int:
        return max(0, self.left[resource])

    def take(self, resource: Resource, amount: int) -> None:
        if amount > 0:
            self.left[resource] -= amount
