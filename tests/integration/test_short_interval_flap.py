"""A short collector interval must not make the system flap, and must not slow a reaction.

The real collector (cgroup source over a simulated node), the real decision core and the
simulated `pct` run on simulated time: the workload driver and a fake clock are moved
forward together, one collector interval at a time, and every intent is applied at once
with `pct set` (an instant actuator). Default stabilization, tolerance and cooldowns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.collector.cycle import Collector
from services.collector.sampling import SamplingSettings
from services.collector.sources.cgroup import CgroupSource
from services.decider.policy import ContainerState, PolicyView, decide
from shared.clock import FakeClock
from shared.config import parse_config
from shared.models import NodeSample, ScaleIntent
from simnode import pct
from simnode.tree import ContainerSpec, build_node
from simnode.workload import LoadProfile, Phase, WorkloadDriver

TICK_S = 1.0  # each 1 s sample sees one draw of the noise: the noisiest case
NOISE = 0.5
MEMORY_MB = 2048


@dataclass
class Run:
    """Collector, decider core and an instant actuator on one simulated node."""

    interval_s: float
    collector: Collector
    driver: WorkloadDriver
    view: PolicyView
    root: Path
    clock: FakeClock = field(default_factory=FakeClock)
    states: dict[int, ContainerState] = field(default_factory=dict)
    applied: list[tuple[float, ScaleIntent]] = field(default_factory=list)  # (seconds, intent)
    samples: list[NodeSample] = field(default_factory=list)
    elapsed: float = 0.0

    def run(self, seconds: float) -> None:
        while self.elapsed < seconds:
            for _ in range(round(self.interval_s / TICK_S)):
                self.driver.advance(TICK_S)
            self.clock.advance(self.interval_s)
            self.elapsed += self.interval_s
            sample = self.collector.collect(self.clock.now(), self.clock.monotonic()).sample
            self.samples.append(sample)
            decision = decide(sample, self.view, self.states, self.clock.now())
            self.states.update(decision.state_changes)
            for intent in decision.intents:
                self.apply(intent)

    def apply(self, intent: ScaleIntent) -> None:
        target = intent.target
        argv = ["set", str(intent.vmid), "-cores", str(target.cores), "-memory", str(target.memory_mb)]
        assert pct.main(["--root", str(self.root), *argv]) == 0
        self.applied.append((self.elapsed, intent))


def start(
    tmp_path: Path,
    interval_s: float,
    loads: Mapping[int, LoadProfile],
    *,
    noise: float = NOISE,
    seed: int = 1,
) -> Run:
    root = tmp_path / f"node-{interval_s:g}"
    specs = [ContainerSpec(vmid, f"ct{vmid}", 2, MEMORY_MB) for vmid in loads]
    node = build_node(root, node_name="pve1", host_cores=32, host_memory_mb=65536, containers=specs)
    driver = WorkloadDriver(node, dict(loads), lambda: 0.0, noise=noise, seed=seed)
    collector = Collector(
        CgroupSource(root, label="sim"), node="pve1", interval_s=interval_s, settings=SamplingSettings()
    )
    config = parse_config({"DEFAULT": {"off_peak_start": 0, "off_peak_end": 0}}, env={})
    run = Run(interval_s, collector, driver, PolicyView(config), root)
    run.run(interval_s)  # the first sample has no CPU figure yet (first-sample)
    return run


def steady(cores: float) -> LoadProfile:
    return LoadProfile((Phase(86_400, cores, MEMORY_MB // 2),))


# Mean loads of 2-core containers at 25 %, 45 % and 62.5 %, each swinging by +-50 % from
# one second to the next: 1 s samples cross both thresholds (20 % and 80 %) again and
# again, 10 s samples (the mean of ten draws) stay between them.
NOISY = {101: steady(0.5), 102: steady(0.9), 103: steady(1.25)}


def test_noisy_load_makes_no_more_changes_at_1s_than_at_10s(tmp_path: Path) -> None:
    changes = {}
    for interval_s in (10.0, 1.0):
        run = start(tmp_path, interval_s, NOISY, seed=1)
        run.run(300)
        changes[interval_s] = [(round(t), i.vmid, i.target.cores) for t, i in run.applied]
    assert len(changes[1.0]) <= len(changes[10.0]), changes


@pytest.mark.parametrize("interval_s", [1.0, 2.0, 10.0])
def test_a_saturating_step_is_answered_by_the_first_sample_that_shows_it(
    tmp_path: Path, interval_s: float
) -> None:
    """50 % of 2 cores, then 3 cores of demand from t=25 s: no extra sample of delay."""
    step = LoadProfile((Phase(25.0, 1.0, 1024), Phase(86_400, 3.0, 1024)))
    run = start(tmp_path, interval_s, {101: step}, noise=0.0)
    run.run(60)
    saturated = next(s for s in run.samples if (s.containers[0].cpu_pct or 0) >= 95)
    (first_change, intent), *_ = run.applied
    assert intent.source_id == saturated.sample_id
    assert intent.target.cores == 4
    assert first_change - 25.0 <= 2 * interval_s
