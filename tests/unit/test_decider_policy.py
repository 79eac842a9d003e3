"""The decision core, sample by sample, with a fake clock: every knob, table-driven."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from support import T0, reading, sample

from services.decider.policy import ContainerState, Decision, PauseEntry, Pauses, PolicyView, decide
from services.decider.policy.pause import pauses_from
from shared.clock import FakeClock
from shared.config import parse_config
from shared.dry_run import DryRunEntry
from shared.models import ContainerReading, HostTotals, NodeSample, ResourceSize


def view(defaults: dict[str, Any] | None = None, pauses: Pauses | None = None, **sections: Any) -> PolicyView:
    document: dict[str, Any] = {"DEFAULT": {"scale_down_stabilization_s": 0, **(defaults or {})}}
    document.update(sections)
    return PolicyView(parse_config(document, env={}), pauses)


def host(cores: int = 16, memory_mb: int = 32768, used_cores: int = 0, used_mb: int = 0) -> HostTotals:
    return HostTotals(
        cores=cores,
        memory_mb=memory_mb,
        allocated_cores_running=used_cores,
        allocated_memory_mb_running=used_mb,
        allocated_cores_all=used_cores,
        allocated_memory_mb_all=used_mb,
    )


@dataclass
class Node:
    """Drives the core like the service does: state kept between samples, time from a
    fake clock, and (optionally) the intents applied to the containers like an actuator."""

    policy: PolicyView
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    states: dict[int, ContainerState] = field(default_factory=dict)
    seq: int = 0

    def sample(self, *readings: ContainerReading, **overrides: Any) -> Decision:
        self.seq += 1
        taken = self.clock.now()
        decision = decide(
            sample(*readings, seq=self.seq, taken_at=taken, **overrides),
            self.policy,
            self.states,
            taken + timedelta(seconds=1),
        )
        self.states.update(decision.state_changes)
        return decision

    def after(self, seconds: float, *readings: ContainerReading, **overrides: Any) -> Decision:
        self.clock.advance(seconds)
        return self.sample(*readings, **overrides)


def targets(decision: Decision) -> dict[int, tuple[int, int]]:
    return {i.vmid: (i.target.cores, i.target.memory_mb) for i in decision.intents}


OFF_PEAK = datetime(2026, 1, 5, 23, 0, tzinfo=UTC)

# ----------------------------------------------------------------- threshold mode


@pytest.mark.parametrize(
    ("knobs", "ct", "expected"),
    [
        pytest.param({}, {"cpu_pct": 95.0}, (4, 1024), id="cpu 95% at 2 cores adds the max increment of 2"),
        pytest.param(
            {}, {"cpu_pct": 95.0, "cores": 3}, (4, 1024), id="3 cores max 4 is capped to 4, not dropped"
        ),
        pytest.param({}, {"cpu_pct": 95.0, "cores": 4}, None, id="already at max_cores nothing happens"),
        pytest.param({}, {"memory_pct": 90.0}, (2, 2730), id="memory 90% at 1024 MB grows to 2730 MB"),
        pytest.param({"max_memory": 2048}, {"memory_pct": 90.0}, (2, 2048), id="max_memory is honoured"),
        pytest.param(
            {}, {"cpu_pct": 0.0, "cores": 4}, (1, 1024), id="cpu 0% at 4 cores min 1 drops to 1 core"
        ),
        pytest.param(
            {},
            {"memory_pct": 5.0, "memory_mb": 600},
            (2, 512),
            id="600 MB shrinks to min_memory 512, not 472",
        ),
        pytest.param({}, {"memory_pct": 5.0, "memory_mb": 512}, None, id="at min_memory nothing shrinks"),
        pytest.param(
            {}, {"cpu_pct": 50.0, "memory_pct": 50.0}, None, id="inside the thresholds nothing happens"
        ),
        pytest.param(
            {},
            {"cpu_pct": 95.0, "memory_pct": 5.0, "memory_mb": 2048},
            (4, 1920),
            id="both resources in one intent",
        ),
    ],
)
def test_threshold_mode(knobs: dict[str, Any], ct: dict[str, Any], expected: tuple[int, int] | None) -> None:
    decision = Node(view(knobs)).sample(reading(101, **ct))
    assert targets(decision).get(101) == expected


def test_an_intent_carries_its_precondition_reason_policy_version_and_expiry() -> None:
    policy = view({"dry_run": True}, DECIDER={"intent_ttl_s": 90})
    (intent,) = Node(policy).sample(reading(101, cpu_pct=95.0)).intents
    assert intent.expected == ResourceSize(cores=2, memory_mb=1024)
    assert intent.reason.rule == "cpu-above-upper"
    assert intent.reason.summary == "ct 101: cpu 95.0% > 80%: cores 2 → 4"
    assert intent.reason.inputs["cpu_pct"] == 95.0
    assert intent.reason.thresholds["cpu_upper"] == 80
    assert intent.policy_version == policy.version
    assert intent.dry_run is True
    assert intent.expires_at - intent.created_at == timedelta(seconds=90)
    assert intent.source_id == "pve1:boot-a:1"


@pytest.mark.parametrize(
    ("ct", "expected"),
    [
        pytest.param(
            {"cpu_pct": None, "cpu_missing": "first-sample", "cores": 4},
            None,
            id="missing cpu never removes cores",
        ),
        pytest.param(
            {"memory_pct": None, "memory_missing": "unreadable", "memory_mb": 4096},
            None,
            id="missing memory never shrinks memory",
        ),
        pytest.param(
            {"cpu_pct": None, "cpu_missing": "garbage", "memory_pct": 90.0},
            (2, 2730),
            id="memory still grows when only cpu is missing",
        ),
    ],
)
def test_missing_data_never_scales_that_resource(
    ct: dict[str, Any], expected: tuple[int, int] | None
) -> None:
    decision = Node(view()).sample(reading(101, **ct))
    assert targets(decision).get(101) == expected


def test_energy_mode_waits_for_data_too() -> None:
    node = Node(view({"energy_mode": True}), clock=FakeClock(OFF_PEAK))
    ct = reading(101, cpu_pct=None, cpu_missing="vanished", cores=4, memory_mb=512)
    assert node.sample(ct).intents == ()


def test_a_stale_sample_is_ignored_entirely() -> None:
    node = Node(view())
    stale = sample(reading(101, cpu_pct=0.0, cores=4), taken_at=T0, interval_s=10.0)
    decision = decide(stale, node.policy, {}, T0 + timedelta(seconds=31))
    assert decision.intents == ()
    assert decision.state_changes == {}
    assert decision.ignored is not None and "stale" in decision.ignored


@pytest.mark.parametrize(
    ("ct", "defaults"),
    [
        pytest.param(
            {"status": "stopped", "cpu_pct": None, "memory_pct": None}, {}, id="a stopped container"
        ),
        pytest.param({}, {"ignore_lxc": [101]}, id="a container in ignore_lxc"),
        pytest.param({"lock": "backup"}, {}, id="a container locked by a backup"),
    ],
)
def test_containers_that_are_left_alone(ct: dict[str, Any], defaults: dict[str, Any]) -> None:
    decision = Node(view(defaults)).sample(reading(101, **{"cpu_pct": 99.0, **ct}))
    assert decision.intents == ()
    assert decision.state_changes == {}


def test_a_container_that_needs_nothing_changes_no_state() -> None:
    node = Node(view({"scale_down_stabilization_s": 300, "scaling_mode": "boost"}))
    for _ in range(5):
        decision = node.after(
            10, reading(101, cpu_pct=50.0), reading(102, cpu_pct=5.0, cores=1, memory_mb=512)
        )
        assert decision.state_changes == {}


# ----------------------------------------------------------------- stabilization


def test_scale_down_waits_for_the_stabilization_window() -> None:
    node = Node(view({"scale_down_stabilization_s": 300}))
    idle = reading(101, cpu_pct=0.0, cores=4)
    assert node.sample(idle).intents == ()
    assert node.after(100, idle).intents == ()
    assert node.after(199, idle).intents == ()
    assert targets(node.after(1, idle)) == {101: (1, 1024)}


def test_the_highest_recommendation_in_the_window_wins() -> None:
    node = Node(view({"scale_down_stabilization_s": 300}))
    node.sample(reading(101, cpu_pct=15.0, cores=4))  # recommends 2 cores
    node.after(100, reading(101, cpu_pct=0.0, cores=4))  # recommends 1 core
    assert targets(node.after(200, reading(101, cpu_pct=0.0, cores=4))) == {101: (2, 1024)}


def test_once_the_higher_recommendation_leaves_the_window_the_lower_one_applies() -> None:
    node = Node(view({"scale_down_stabilization_s": 300}))
    node.sample(reading(101, cpu_pct=15.0, cores=4))
    node.after(100, reading(101, cpu_pct=0.0, cores=4))
    assert targets(node.after(201, reading(101, cpu_pct=0.0, cores=4))) == {101: (1, 1024)}


def test_a_busy_sample_inside_the_window_restarts_it() -> None:
    node = Node(view({"scale_down_stabilization_s": 300}))
    node.sample(reading(101, cpu_pct=0.0, cores=4))
    node.after(100, reading(101, cpu_pct=50.0, cores=4))
    node.after(100, reading(101, cpu_pct=0.0, cores=4))
    assert node.after(100, reading(101, cpu_pct=0.0, cores=4)).intents == ()
    assert targets(node.after(200, reading(101, cpu_pct=0.0, cores=4))) == {101: (1, 1024)}


def test_scale_up_is_never_stabilized() -> None:
    node = Node(view({"scale_down_stabilization_s": 300}))
    assert targets(node.sample(reading(101, cpu_pct=95.0))) == {101: (4, 1024)}


# ----------------------------------------------------------------- cooldowns, warm-up, pending


def test_cooldown_up_delays_the_next_scale_up() -> None:
    node = Node(view({"cooldown_up_s": 60}))
    assert node.sample(reading(101, cpu_pct=95.0, cores=1)).intents
    assert node.after(30, reading(101, cpu_pct=95.0, cores=3)).intents == ()
    assert targets(node.after(31, reading(101, cpu_pct=95.0, cores=3))) == {101: (4, 1024)}


def test_cooldown_down_delays_a_scale_down_after_any_change() -> None:
    node = Node(view({"cooldown_down_s": 120}))
    assert node.sample(reading(101, cpu_pct=95.0, cores=2)).intents
    assert node.after(60, reading(101, cpu_pct=0.0, cores=4)).intents == ()
    assert targets(node.after(61, reading(101, cpu_pct=0.0, cores=4))) == {101: (1, 1024)}


def test_cooldown_down_never_delays_a_scale_up() -> None:
    node = Node(view({"cooldown_down_s": 600}))
    assert node.sample(reading(101, cpu_pct=0.0, cores=4)).intents
    assert targets(node.after(10, reading(101, cpu_pct=95.0, cores=1))) == {101: (3, 1024)}


@pytest.mark.parametrize(
    ("running_for_s", "expected"),
    [
        pytest.param(30.0, None, id="a container started 30s ago is still warming up"),
        pytest.param(61.0, (4, 1024), id="after 61s it is decided"),
        pytest.param(None, (4, 1024), id="an unknown start time does not hold it back"),
    ],
)
def test_warm_up_after_a_start(running_for_s: float | None, expected: tuple[int, int] | None) -> None:
    decision = Node(view({"warmup_s": 60})).sample(reading(101, cpu_pct=95.0, running_for_s=running_for_s))
    assert targets(decision).get(101) == expected


def test_warm_up_after_a_resize() -> None:
    node = Node(view({"warmup_s": 60}))
    assert node.sample(reading(101, cpu_pct=95.0, cores=1)).intents
    assert node.after(30, reading(101, cpu_pct=95.0, cores=3)).intents == ()
    assert node.after(31, reading(101, cpu_pct=95.0, cores=3)).intents


def test_no_new_intent_while_the_last_one_waits_for_the_actuator() -> None:
    node = Node(view(DECIDER={"intent_ttl_s": 60}))
    busy = reading(101, cpu_pct=95.0)
    assert node.sample(busy).intents
    assert node.after(30, busy).intents == ()  # still 2 cores: the intent is not applied yet
    assert node.after(31, busy).intents  # the first intent has expired: decide again


def test_while_an_intent_waits_each_later_sample_sends_it_again_and_decides_nothing_new() -> None:
    # Its first publish may never have been stored (a stream without a leader) and the
    # sample that made it may be dropped: a later sample must carry it, same id.
    node = Node(view(DECIDER={"intent_ttl_s": 60}))
    busy = reading(101, cpu_pct=95.0)
    [made] = node.sample(busy).intents
    later = node.after(10, busy)
    assert later.intents == () and later.resent == (made,)
    assert node.after(10, reading(101, cpu_pct=95.0, cores=4)).resent == ()  # applied: nothing to send


def test_a_sample_redelivered_too_late_to_decide_on_still_sends_what_it_decided() -> None:
    node = Node(view())
    ct = sample(reading(101, cpu_pct=95.0), taken_at=T0, interval_s=10.0)
    first = decide(ct, node.policy, {}, T0)
    late = decide(ct, node.policy, dict(first.state_changes), T0 + timedelta(seconds=31))
    assert late.ignored is not None and "stale" in late.ignored
    assert late.intents == () and late.state_changes == {}
    assert late.resent == first.intents
    other = sample(reading(101, cpu_pct=95.0), seq=2, taken_at=T0, interval_s=10.0)
    assert decide(other, node.policy, dict(first.state_changes), T0 + timedelta(seconds=31)).resent == ()


def test_the_same_sample_decided_again_re_emits_the_same_intent_and_changes_nothing() -> None:
    node = Node(view())
    ct = sample(reading(101, cpu_pct=95.0))
    first = decide(ct, node.policy, {}, T0)
    again = decide(ct, node.policy, dict(first.state_changes), T0 + timedelta(seconds=5))
    assert again.intents == first.intents
    assert again.state_changes == {}


def test_an_older_sample_than_the_state_is_ignored() -> None:
    node = Node(view())
    newer = decide(sample(reading(101, cpu_pct=95.0), seq=7), node.policy, {}, T0)
    older = decide(
        sample(reading(101, cpu_pct=0.0, cores=4), seq=6), node.policy, dict(newer.state_changes), T0
    )
    assert older.intents == ()


# ----------------------------------------------------------------- pauses and dry-run


@pytest.mark.parametrize(
    ("mode", "busy_scales", "idle_scales"),
    [
        pytest.param("none", True, True, id="not paused"),
        pytest.param("all", False, False, id="paused entirely"),
        pytest.param("scale-down", True, False, id="only scale-down paused"),
        pytest.param("scale-up", False, True, id="only scale-up paused"),
    ],
)
@pytest.mark.parametrize("where", ["tier", "global", "node", "container"])
def test_pauses(mode: str, busy_scales: bool, idle_scales: bool, where: str) -> None:
    entry = PauseEntry(mode=mode)  # type: ignore[arg-type]
    if where == "tier":
        policy = view(TIER_web={"lxc_containers": [101, 102], "pause": mode})
    elif where == "global":
        policy = view(pauses=Pauses(global_entry=entry))
    elif where == "node":
        policy = view(pauses=Pauses(nodes={"pve1": entry}))
    else:
        policy = view(pauses=Pauses(containers={("pve1", 101): entry, ("pve1", 102): entry}))
    decision = Node(policy).sample(reading(101, cpu_pct=95.0), reading(102, cpu_pct=0.0, cores=4))
    assert (101 in targets(decision)) is busy_scales
    assert (102 in targets(decision)) is idle_scales


def test_a_pause_with_an_until_in_the_past_pauses_nothing() -> None:
    expired = PauseEntry(mode="all", until=T0 - timedelta(seconds=1))
    decision = Node(view(pauses=Pauses(global_entry=expired))).sample(reading(101, cpu_pct=95.0))
    assert targets(decision) == {101: (4, 1024)}


def test_a_node_pause_leaves_other_nodes_alone() -> None:
    policy = view(pauses=pauses_from({"pause.pve2.all": PauseEntry(mode="all", reason="firmware")}))
    assert set(targets(Node(policy).sample(reading(101, cpu_pct=95.0)))) == {101}  # pve1
    decision = Node(policy).sample(reading(101, cpu_pct=95.0), node="pve2")
    assert targets(decision) == {} and decision.notes[101] == "paused"


def test_pauses_combine_every_direction_any_of_them_blocks() -> None:
    pauses = pauses_from({
        "pause.pve1.all": PauseEntry(mode="scale-up"), "pause.pve1.102": PauseEntry(mode="scale-down"),
    })  # fmt: skip
    busy, idle = reading(101, cpu_pct=95.0), reading(102, cpu_pct=0.0, cores=4)
    assert targets(Node(view(pauses=pauses)).sample(busy, reading(102, cpu_pct=95.0))) == {}
    assert targets(Node(view(pauses=pauses)).sample(busy, idle)) == {}


def test_dry_run_switched_on_by_the_operator_marks_intents_whatever_the_file_says() -> None:
    switched = view().with_dry_run(DryRunEntry(enabled=True, reason="watch first"))
    (intent,) = Node(switched).sample(reading(101, cpu_pct=95.0)).intents
    assert intent.dry_run is True
    assert (switched.dry_run, switched.dry_run_source) == (True, "operator")
    live = view({"dry_run": True}).with_dry_run(DryRunEntry(enabled=False))
    (intent,) = Node(live).sample(reading(101, cpu_pct=95.0)).intents
    assert intent.dry_run is False
    assert live.with_dry_run(None).dry_run is True  # switch removed: the file decides again


def test_a_dry_run_intent_is_not_waited_for_once_dry_run_is_switched_off() -> None:
    node = Node(view().with_dry_run(DryRunEntry(enabled=True)))
    (dry,) = node.sample(reading(101, cpu_pct=95.0)).intents
    assert node.after(10, reading(101, cpu_pct=95.0)).intents == ()  # waits for the dry run, as before
    node.policy = node.policy.with_dry_run(DryRunEntry(enabled=False))
    (real,) = node.after(10, reading(101, cpu_pct=95.0)).intents
    assert (dry.dry_run, real.dry_run, real.target) == (True, False, dry.target)


def test_a_real_intent_is_still_waited_for_when_dry_run_is_switched_on() -> None:
    node = Node(view())
    assert node.sample(reading(101, cpu_pct=95.0)).intents
    node.policy = node.policy.with_dry_run(DryRunEntry(enabled=True))
    assert node.after(10, reading(101, cpu_pct=95.0)).intents == ()


def test_a_container_pause_leaves_other_containers_alone() -> None:
    pauses = Pauses(containers={("pve1", 101): PauseEntry(mode="all")})
    decision = Node(view(pauses=pauses)).sample(reading(101, cpu_pct=95.0), reading(102, cpu_pct=95.0))
    assert set(targets(decision)) == {102}


# ----------------------------------------------------------------- energy mode and behaviour


def test_energy_mode_shrinks_to_the_floor_off_peak_even_when_busy() -> None:
    node = Node(view({"energy_mode": True}), clock=FakeClock(OFF_PEAK))
    decision = node.sample(reading(101, cpu_pct=95.0, cores=4, memory_mb=4096, memory_pct=50.0))
    # memory goes no lower than the 2048 MB in use plus one 256 MB increment (a cut below
    # use would OOM-kill inside the container: docs/fidelity.md point 2)
    assert targets(decision) == {101: (1, 2048 + 256)}
    assert decision.intents[0].reason.rule == "off-peak-energy+off-peak-energy"


def test_energy_mode_lowers_the_floor_it_does_not_freeze_a_saturated_container() -> None:
    # Parity with the original: its threshold step runs first, so a container already at
    # its floor still grows when saturated off-peak (it used to be held there all night).
    node = Node(view({"energy_mode": True}), clock=FakeClock(OFF_PEAK))
    decision = node.sample(reading(101, cpu_pct=98.0, cores=1, memory_mb=512, memory_pct=95.0))
    assert targets(decision) == {101: (3, 3072)}
    assert decision.intents[0].reason.rule == "cpu-above-upper+memory-above-upper"


def test_energy_mode_shrinks_the_resource_above_its_floor_and_grows_the_saturated_one() -> None:
    node = Node(view({"energy_mode": True}), clock=FakeClock(OFF_PEAK))
    decision = node.sample(reading(101, cpu_pct=98.0, cores=1, memory_mb=4096, memory_pct=5.0))
    assert targets(decision) == {101: (3, 512)}


def test_energy_mode_at_the_floor_with_a_quiet_container_does_nothing() -> None:
    node = Node(view({"energy_mode": True}), clock=FakeClock(OFF_PEAK))
    assert node.sample(reading(101, cpu_pct=50.0, cores=1, memory_mb=512)).intents == ()


def test_energy_mode_does_nothing_at_peak_hours() -> None:
    node = Node(view({"energy_mode": True}))  # T0 is noon UTC
    assert node.sample(reading(101, cores=4, memory_mb=4096)).intents == ()


def test_energy_mode_respects_a_scale_down_pause() -> None:
    policy = view({"energy_mode": True, "pause": "scale-down"})
    assert Node(policy, clock=FakeClock(OFF_PEAK)).sample(reading(101, cores=4)).intents == ()


def test_off_peak_shrinks_memory_steps_without_energy_mode() -> None:
    node = Node(view(), clock=FakeClock(OFF_PEAK))
    decision = node.sample(reading(101, memory_pct=5.0, memory_mb=4096))
    assert targets(decision) == {101: (2, 3994)}  # chunk 128 x 0.8 = 102


def test_conservative_behaviour_halves_memory_chunks() -> None:
    decision = Node(view({"behaviour": "conservative"})).sample(reading(101, memory_pct=5.0, memory_mb=4096))
    assert targets(decision) == {101: (2, 4032)}


# ----------------------------------------------------------------- admission control


@pytest.mark.parametrize(
    ("knobs", "node_host", "expected"),
    [
        pytest.param(
            {}, host(used_cores=14), (3, 1024), id="one core free after the reserve: +2 capped to +1"
        ),
        pytest.param({}, host(used_cores=15), None, id="no core free after the reserve: refused"),
        pytest.param(
            {}, host(used_cores=13), (4, 1024), id="reserve applied once: 16 - 1 = 15 cores, 2 free"
        ),
        pytest.param(
            {"reserve_cpu_percent": 0}, host(used_cores=15), (3, 1024), id="a 0% reserve keeps nothing back"
        ),
        pytest.param(
            {"overcommit_ratio": 2.0}, host(used_cores=28), (4, 1024), id="overcommit 2 doubles capacity"
        ),
    ],
)
def test_cores_are_admitted_against_what_the_node_already_holds(
    knobs: dict[str, Any], node_host: HostTotals, expected: tuple[int, int] | None
) -> None:
    decision = Node(view(knobs)).sample(reading(101, cpu_pct=95.0), host=node_host)
    assert targets(decision).get(101) == expected


def test_memory_is_capped_by_what_is_left_after_the_reserve() -> None:
    decision = Node(view()).sample(reading(101, memory_pct=90.0), host=host(used_mb=30000))
    assert targets(decision) == {101: (2, 1024 + 720)}  # 32768 - 2048 - 30000 = 720 MB free
    assert "capped by host capacity" in decision.intents[0].reason.summary


def test_the_most_saturated_container_is_served_first() -> None:
    decision = Node(view()).sample(
        reading(101, cpu_pct=85.0), reading(102, cpu_pct=99.0), host=host(used_cores=14)
    )
    assert targets(decision) == {102: (3, 1024)}
    assert "no cpu left" in decision.notes[101]


# ----------------------------------------------------------------- boost mode


BOOST = {"scaling_mode": "boost", "consecutive_samples": 3, "boost_duration": 120, "max_cores": 8}


def test_boost_after_consecutive_saturated_samples_then_revert() -> None:
    node = Node(view(BOOST))
    hot = reading(101, cpu_pct=97.0, cores=2)
    assert node.sample(hot).intents == ()
    assert node.after(10, hot).intents == ()
    boosted = node.after(10, hot)
    assert targets(boosted) == {101: (3, 1024)}  # ceil(2 x 1.5)
    assert boosted.intents[0].reason.rule == "boost"
    assert node.after(60, reading(101, cpu_pct=97.0, cores=3)).intents == ()
    reverted = node.after(60, reading(101, cpu_pct=97.0, cores=3))
    assert targets(reverted) == {101: (2, 1024)}
    assert reverted.intents[0].reason.rule == "boost-revert"


def test_boost_falls_back_to_the_smaller_factor_when_the_node_is_short() -> None:
    node = Node(view({**BOOST, "consecutive_samples": 1}))
    decision = node.sample(reading(101, cpu_pct=99.0, cores=4), host=host(used_cores=14))
    assert targets(decision) == {101: (5, 1024)}  # x1.5 needs 2 cores, x1.25 needs 1
    assert decision.intents[0].reason.rule == "boost-fallback"


def test_boost_never_passes_the_tier_maximum() -> None:
    node = Node(view({**BOOST, "consecutive_samples": 1, "max_cores": 3}))
    assert targets(node.sample(reading(101, cpu_pct=99.0, cores=2))) == {101: (3, 1024)}


def test_a_manual_change_during_a_boost_is_adopted_and_never_reverted() -> None:
    node = Node(view({**BOOST, "consecutive_samples": 1}))
    assert node.sample(reading(101, cpu_pct=99.0, cores=2)).intents
    node.after(10, reading(101, cpu_pct=50.0, cores=6))  # an operator set 6 cores
    assert node.after(300, reading(101, cpu_pct=50.0, cores=6)).intents == ()
    assert node.states[101].cpu.boost is None


def test_an_unsaturated_sample_resets_the_counter() -> None:
    node = Node(view(BOOST))
    node.sample(reading(101, cpu_pct=97.0))
    node.after(10, reading(101, cpu_pct=97.0))
    node.after(10, reading(101, cpu_pct=50.0))
    assert node.after(10, reading(101, cpu_pct=97.0)).intents == ()
    assert node.states[101].cpu.saturated == 1


def test_memory_boosts_independently_of_cpu() -> None:
    node = Node(view({**BOOST, "consecutive_samples": 1}))
    assert targets(node.sample(reading(101, memory_pct=96.0))) == {101: (2, 1536)}


def test_node_sample_builder_sanity() -> None:
    assert isinstance(sample(reading(101)), NodeSample)


def test_a_cpulimit_below_the_cores_is_not_answered_with_more_cores() -> None:
    # The collector measures CPU % against the cpulimit; adding cores would not lift it.
    node = Node(view())
    assert node.sample(reading(101, cpu_pct=99.0, cores=4, cpulimit=1.5)).intents == ()
    assert targets(node.sample(reading(101, cpu_pct=99.0, cores=2, cpulimit=4.0))) == {101: (4, 1024)}


# ----------------------------------------------------------------- scale-up evidence


def test_at_a_1s_interval_usage_above_the_threshold_must_last_scale_up_sustain_s() -> None:
    node = Node(view())
    hot = reading(101, cpu_pct=82.0)
    first = node.sample(hot, interval_s=1.0)
    assert not first.intents  # one second of 82 % is not evidence yet
    for _ in range(8):
        assert not node.after(1, hot, interval_s=1.0).intents
    assert targets(node.after(1, hot, interval_s=1.0)) == {101: (3, 1024)}  # 10 s measured


def test_a_sample_back_under_the_threshold_restarts_the_wait() -> None:
    node = Node(view())
    node.sample(reading(101, cpu_pct=82.0), interval_s=1.0)
    for _ in range(5):
        node.after(1, reading(101, cpu_pct=82.0), interval_s=1.0)
    node.after(1, reading(101, cpu_pct=60.0), interval_s=1.0)
    for _ in range(9):
        assert not node.after(1, reading(101, cpu_pct=82.0), interval_s=1.0).intents
    assert node.after(1, reading(101, cpu_pct=82.0), interval_s=1.0).intents


@pytest.mark.parametrize("interval_s", [1.0, 2.0, 10.0])
def test_the_first_saturated_sample_grows_the_container_at_any_interval(interval_s: float) -> None:
    decision = Node(view()).sample(reading(101, cpu_pct=96.0), interval_s=interval_s)
    assert targets(decision) == {101: (4, 1024)}


def test_at_the_default_10s_interval_one_sample_above_the_threshold_is_enough() -> None:
    assert targets(Node(view()).sample(reading(101, cpu_pct=82.0), interval_s=10.0)) == {101: (3, 1024)}


def test_waiting_for_evidence_writes_the_state_once_not_every_sample() -> None:
    node = Node(view())
    assert 101 in node.sample(reading(101, cpu_pct=82.0), interval_s=1.0).state_changes
    assert not node.after(1, reading(101, cpu_pct=82.0), interval_s=1.0).state_changes
