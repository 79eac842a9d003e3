"""The decider on a node that behaves like Proxmox (docs/fidelity.md): cores enacted
late, memory cuts that would OOM-kill, OOM kills, unknown cores."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import reading
from test_decider_policy import Node, targets, view


def test_no_second_cores_growth_while_the_cpuset_has_not_caught_up() -> None:
    node = Node(view({"max_cores": 8}))
    first = node.sample(reading(cpu_pct=100.0, cores=2, cpuset_cpus=2))
    assert targets(first) == {101: (4, 1024)}
    # applied: the config says 4, pvestatd has not rebalanced yet, still saturated on 2 CPUs
    again = node.after(10, reading(cpu_pct=100.0, cores=4, cpuset_cpus=2))
    assert again.intents == ()
    assert "cores 4 not enacted yet" in again.notes[101]
    # once the cpuset holds 4 CPUs and it is still saturated, it may grow again
    later = node.after(10, reading(cpu_pct=100.0, cores=4, cpuset_cpus=4))
    assert targets(later) == {101: (6, 1024)}


def test_a_cpuset_capped_at_the_host_size_is_enacted() -> None:
    decision = Node(view({"max_cores": 32})).sample(reading(cpu_pct=100.0, cores=20, cpuset_cpus=16))
    assert "not enacted" not in decision.notes.get(101, "")


def test_unknown_cores_mean_no_decision_at_all() -> None:
    decision = Node(view()).sample(reading(cpu_pct=100.0, memory_pct=99.0, cores_missing="unreadable"))
    assert decision.intents == ()
    assert decision.notes[101] == "cores unknown (unreadable): left alone"


def test_oom_kills_grow_memory_below_the_upper_threshold() -> None:
    decision = Node(view()).sample(reading(memory_pct=40.0, memory_used_mb=410.0, oom_kills=2))
    assert targets(decision) == {101: (2, 1024 + 256)}
    assert decision.intents[0].reason.rule == "memory-oom-kill"


def test_oom_kills_stay_within_the_tier_maximum() -> None:
    decision = Node(view({"max_memory": 1024})).sample(reading(memory_pct=40.0, oom_kills=1))
    assert decision.intents == ()
    assert "tier maximum" in decision.notes[101]


def test_a_cut_stops_one_increment_above_the_recent_peak() -> None:
    node = Node(_policy(60, 256))
    node.sample(reading(memory_mb=1024, memory_pct=15.0, memory_used_mb=154.0))
    for _ in range(6):
        decision = node.after(10, reading(memory_mb=1024, memory_pct=5.0, memory_used_mb=51.0))
    # the step asks for min_memory 128; the window's peak 154 MB + 256 MB headroom stays
    assert targets(decision) == {101: (2, 154 + 256)}


def _policy(window_s: int, increment: int) -> Any:
    return view({"scale_down_stabilization_s": window_s, "memory_min_increment": increment,
                 "min_decrease_chunk": 1024, "min_memory": 128})  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(
    used=st.lists(st.integers(50, 3000), min_size=1, max_size=40),
    window_s=st.sampled_from([0, 30, 120]),
    increment=st.sampled_from([64, 256, 512]),
    start_mb=st.integers(1024, 8192),
)
def test_the_decider_never_proposes_memory_below_recent_use(
    used: list[int], window_s: int, increment: int, start_mb: int
) -> None:
    """Over any usage history, every memory cut keeps at least the highest use of the
    stabilization window plus one memory_min_increment; applied intents change the size."""
    node = Node(_policy(window_s, increment))
    memory = start_mb
    history: list[tuple[float, int]] = []
    for step, mb in enumerate(used):
        at = step * 10.0
        history.append((at, mb))
        pct = min(mb / memory * 100.0, 100.0)
        decision = node.after(10, reading(memory_mb=memory, memory_pct=pct, memory_used_mb=float(mb)))
        for intent in decision.intents:
            if intent.target.memory_mb < intent.expected.memory_mb:
                recent = max(u for t, u in history if t >= at - window_s)
                assert intent.target.memory_mb >= recent + increment
            memory = intent.target.memory_mb  # applied at once, as an actuator would


def test_a_cpulimit_only_container_read_through_pvesh_is_left_alone_with_a_reason() -> None:
    # `cpulimit: 1.5` and no `cores` line: the collector reports the host's 16 CPUs (as
    # Proxmox allows and as the actuator reads back), never ceil(maxcpu) = 2
    decision = Node(view({"max_cores": 32})).sample(reading(cpu_pct=100.0, cores=16, cpulimit=1.5))
    assert decision.intents == ()
    assert "cpulimit is below its cores" in decision.notes[101]
