"""Collector and decider core against the simulated node (no broker): the effects of
docs/fidelity.md points 1 and 2 as the services see them."""

from __future__ import annotations

import subprocess
from datetime import timedelta

from test_decider_policy import view

from services.collector.cycle import Collector
from services.collector.sampling import SamplingSettings
from services.collector.sources.cgroup import CgroupSource
from services.decider.policy import ContainerState, decide
from shared.clock import FakeClock
from shared.models import ContainerReading, ScaleIntent
from simnode.tree import ContainerSpec, SimNode, build_node
from simnode.workload import LoadProfile, Phase, WorkloadDriver


class Loop:
    """Workload, collector and decider on one fake clock; intents applied with the simulated pct."""

    def __init__(self, node: SimNode, profile: LoadProfile, **policy: object) -> None:
        self.node = node
        self.clock = FakeClock()
        self.driver = WorkloadDriver(node, {101: profile}, self.clock.monotonic)
        self.collector = Collector(CgroupSource(node.root, label="sim"), node="pve1", interval_s=5,
                                   settings=SamplingSettings())  # fmt: skip
        self.policy = view({"max_cores": 8, "warmup_s": 0, **policy})
        self.states: dict[int, ContainerState] = {}

    def step(self, seconds: float = 5.0) -> tuple[ContainerReading, tuple[ScaleIntent, ...], str]:
        self.driver.advance(seconds)
        self.clock.advance(seconds)
        sample = self.collector.collect(self.clock.now(), self.clock.monotonic()).sample
        decision = decide(sample, self.policy, self.states, self.clock.now() + timedelta(seconds=1))
        self.states.update(decision.state_changes)
        for intent in decision.intents:
            args = ["set", "101", "-cores", str(intent.target.cores), "-memory", str(intent.target.memory_mb)]
            subprocess.run([str(self.node.pct_path), *args], check=True, timeout=30)
        return sample.containers[0], decision.intents, decision.notes.get(101, "")


def test_a_grown_container_reads_saturated_until_the_rebalance_and_is_not_grown_twice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    node = build_node(tmp_path / "n", node_name="pve1", host_cores=16, host_memory_mb=32768,
                      containers=[ContainerSpec(101, "web1", 1, 512)])  # fmt: skip
    loop = Loop(node, LoadProfile((Phase(3600, 3.0, 300, 0),)))
    loop.step(1.0)  # first sample: no CPU figure yet
    _, intents, _ = loop.step(2.0)
    assert len(intents) == 1 and intents[0].target.cores > 1  # saturated on 1 core: grow
    cores = intents[0].target.cores
    reading, intents, note = loop.step(2.0)  # t=5: pvestatd has not run yet
    assert (reading.cores, reading.cpuset_cpus, reading.cpu_pct) == (cores, 1, 100.0)
    assert intents == () and "not enacted yet" in note
    for _ in range(3):
        reading, intents, _ = loop.step(5.0)
        if reading.cpuset_cpus == cores:
            break
        assert intents == ()  # never a second growth before the first one is enacted
    assert reading.cpuset_cpus == cores  # pvestatd's pass, at most 10 s later


def test_a_memory_cut_below_use_oom_kills_and_the_kill_grows_memory(tmp_path) -> None:  # type: ignore[no-untyped-def]
    node = build_node(tmp_path / "n", node_name="pve1", host_cores=16, host_memory_mb=32768,
                      containers=[ContainerSpec(101, "db1", 2, 2048, swap_mb=0)])  # fmt: skip
    loop = Loop(node, LoadProfile((Phase(3600, 0.5, 900, 100),)))
    loop.step(1.0)
    loop.step(5.0)
    # an operator (or the original autoscaler) cuts memory below what the service uses
    res = subprocess.run([str(node.pct_path), "set", "101", "-memory", "600"], check=False, timeout=30)
    assert res.returncode == 0
    reading, intents, _ = loop.step(5.0)
    assert reading.oom_kills == 1
    assert [i.target.memory_mb for i in intents] == [600 + 256]
    assert intents[0].reason.rule == "memory-oom-kill"
