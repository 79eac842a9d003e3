"""Properties of the decision core that must hold for any sample, policy and state."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import T0

from services.decider.policy import PolicyView, decide
from services.decider.policy.admission import reserved_cores
from shared.config import parse_config
from shared.models import ContainerReading, HostTotals, NodeSample

MIN_CORES, MAX_CORES = 1, 6
MIN_MEMORY, MAX_MEMORY = 512, 8192

percent = st.one_of(st.none(), st.floats(min_value=0, max_value=100, allow_nan=False))


@st.composite
def containers(draw: st.DrawFn, vmid: int) -> ContainerReading:
    cpu = draw(percent)
    memory = draw(percent)
    return ContainerReading(
        vmid=vmid,
        status="running",
        cores=draw(st.integers(MIN_CORES, MAX_CORES)),
        memory_mb=draw(st.integers(MIN_MEMORY, MAX_MEMORY)),
        cpu_pct=cpu,
        memory_pct=memory,
        cpu_missing=None if cpu is not None else "unreadable",
        memory_missing=None if memory is not None else "garbage",
        running_for_s=3600.0,
    )


@st.composite
def samples(draw: st.DrawFn) -> NodeSample:
    count = draw(st.integers(1, 8))
    readings = tuple(draw(containers(100 + i)) for i in range(count))
    cores = draw(st.integers(2, 64))
    memory = draw(st.integers(4096, 65536))
    return NodeSample(
        node="pve1",
        seq=1,
        boot_id="b",
        taken_at=T0,
        interval_s=10,
        source="sim",
        host=HostTotals(
            cores=cores,
            memory_mb=memory,
            allocated_cores_running=sum(r.cores for r in readings),
            allocated_memory_mb_running=sum(r.memory_mb for r in readings),
            allocated_cores_all=sum(r.cores for r in readings),
            allocated_memory_mb_all=sum(r.memory_mb for r in readings),
        ),
        containers=readings,
    )


@st.composite
def policies(draw: st.DrawFn) -> PolicyView:
    defaults: dict[str, Any] = {
        "min_cores": MIN_CORES,
        "max_cores": MAX_CORES,
        "min_memory": MIN_MEMORY,
        "max_memory": MAX_MEMORY,
        "core_max_increment": draw(st.integers(1, 4)),
        "memory_min_increment": draw(st.sampled_from([64, 256, 1024])),
        "min_decrease_chunk": draw(st.sampled_from([64, 128, 1024])),
        "behaviour": draw(st.sampled_from(["normal", "conservative", "aggressive"])),
        "scaling_mode": draw(st.sampled_from(["threshold", "boost"])),
        "consecutive_samples": 1,
        "scale_down_stabilization_s": draw(st.sampled_from([0, 300])),
        "energy_mode": draw(st.booleans()),
        "off_peak_start": draw(st.integers(0, 23)),
        "reserve_cpu_percent": draw(st.sampled_from([0, 10, 50])),
        "reserve_memory_mb": draw(st.sampled_from([0, 2048])),
    }
    return PolicyView(parse_config({"DEFAULT": defaults}, env={}))


def _capacity(sample: NodeSample, view: PolicyView) -> tuple[int, int]:
    d = view.defaults
    cores = sample.host.cores - reserved_cores(sample.host.cores, d.reserve_cpu_percent)
    return cores, max(0, sample.host.memory_mb - d.reserve_memory_mb)


@settings(max_examples=150, deadline=None)
@given(sample=samples(), view=policies())
def test_targets_stay_within_the_tier_limits(sample: NodeSample, view: PolicyView) -> None:
    for intent in decide(sample, view, {}, T0).intents:
        if intent.target.cores != intent.expected.cores:
            assert MIN_CORES <= intent.target.cores <= MAX_CORES
        if intent.target.memory_mb != intent.expected.memory_mb:
            assert MIN_MEMORY <= intent.target.memory_mb <= MAX_MEMORY


@settings(max_examples=150, deadline=None)
@given(sample=samples(), view=policies())
def test_increases_never_take_the_node_beyond_its_capacity_after_the_reserve(
    sample: NodeSample, view: PolicyView
) -> None:
    decision = decide(sample, view, {}, T0)
    cores_cap, memory_cap = _capacity(sample, view)
    added_cores = sum(max(0, i.target.cores - i.expected.cores) for i in decision.intents)
    added_memory = sum(max(0, i.target.memory_mb - i.expected.memory_mb) for i in decision.intents)
    if added_cores:
        assert sample.host.allocated_cores_running + added_cores <= cores_cap
    if added_memory:
        assert sample.host.allocated_memory_mb_running + added_memory <= memory_cap


@settings(max_examples=150, deadline=None)
@given(sample=samples(), view=policies())
def test_a_resource_with_missing_data_is_never_scaled_down(sample: NodeSample, view: PolicyView) -> None:
    readings = {r.vmid: r for r in sample.containers}
    for intent in decide(sample, view, {}, T0).intents:
        reading = readings[intent.vmid]
        if reading.cpu_pct is None:
            assert intent.target.cores >= intent.expected.cores
        if reading.memory_pct is None:
            assert intent.target.memory_mb >= intent.expected.memory_mb


@settings(max_examples=100, deadline=None)
@given(sample=samples(), view=policies(), later=st.floats(0, 25))
def test_the_same_sample_twice_gives_the_same_intents(
    sample: NodeSample, view: PolicyView, later: float
) -> None:
    first = decide(sample, view, {}, T0)
    second = decide(sample, view, {}, T0 + timedelta(seconds=later))
    assert [i.intent_id for i in first.intents] == [i.intent_id for i in second.intents]
    # Only the intents' timestamps come from the decider's clock; everything else is the sample's.
    assert {k: v.model_copy(update={"pending": None}) for k, v in first.state_changes.items()} == {
        k: v.model_copy(update={"pending": None}) for k, v in second.state_changes.items()
    }
    replayed = decide(sample, view, dict(first.state_changes), T0 + timedelta(seconds=later))
    assert replayed.intents == first.intents
    assert replayed.state_changes == {}
