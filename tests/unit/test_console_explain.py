"""The console's verdicts come from the decider's own `decide`: the same intent, its
reason, pending intents, pauses, timers and missing readings, on a fake clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from support import T0, reading, sample

from services.decider.explain import explain_sample
from services.decider.policy import ContainerState, PolicyView, decide, encode_state
from services.decider.policy.state import PendingIntent, ResourceState
from shared.config import parse_config
from shared.dry_run import DryRunEntry
from shared.pauses import PauseEntry

NOW = T0 + timedelta(seconds=1)


def view(**defaults: Any) -> PolicyView:
    document = {
        "DEFAULT": {"scale_down_stabilization_s": 0, **defaults},
        "TIER_web": {"lxc_containers": [101]},
    }
    return PolicyView(parse_config(document, env={}))


def test_a_busy_container_gets_the_intent_and_reason_decide_gives() -> None:
    busy = sample(reading(101, cpu_pct=95.0))
    policy = view()
    [intent] = decide(busy, policy, {}, NOW).intents
    shown = explain_sample(policy, busy, {}, {}, NOW)[101]
    assert (shown.verdict, shown.target, shown.rule) == ("scale-up", intent.target, intent.reason.rule)
    assert shown.reason == intent.reason.summary
    assert shown.tier == "web"


def test_an_intent_not_yet_applied_is_pending_with_its_reason() -> None:
    busy = sample(reading(101, cpu_pct=95.0))
    policy = view()
    decision = decide(busy, policy, {}, NOW)
    stored = {101: encode_state(decision.state_changes[101])}
    shown = explain_sample(policy, busy, stored, {}, NOW)[101]
    assert shown.verdict == "pending"
    assert shown.pending == decision.intents[0]
    assert shown.reason == f"waiting for the actuator: {decision.intents[0].reason.summary}"


def test_a_container_pause_is_shown_and_holds_the_container() -> None:
    busy = sample(reading(101, cpu_pct=95.0))
    entry = PauseEntry(mode="all", reason="maintenance")
    shown = explain_sample(view(), busy, {}, {"pause.pve1.101": entry.model_dump_json().encode()}, NOW)[101]
    assert (shown.verdict, shown.reason, shown.pause, shown.pause_scope) == (
        "hold",
        "paused",
        entry,
        "container",
    )


def test_an_expired_pause_is_not_shown() -> None:
    entry = PauseEntry(mode="all", until=T0 - timedelta(seconds=1))
    shown = explain_sample(
        view(), sample(reading(101)), {}, {"pause.all": entry.model_dump_json().encode()}, NOW
    )
    assert shown[101].pause is None


def test_a_missing_reading_is_named_and_never_acted_on() -> None:
    shown = explain_sample(
        view(), sample(reading(101, cpu_pct=None, cpu_missing="first-sample")), {}, {}, NOW
    )
    assert shown[101].verdict == "none"
    assert shown[101].reason == "cpu reading missing (first-sample): never acted on"


def test_a_stale_sample_is_ignored_with_the_reason() -> None:
    late = NOW + timedelta(minutes=10)
    shown = explain_sample(view(), sample(reading(101, cpu_pct=95.0)), {}, {}, late)[101]
    assert shown.verdict == "ignored" and shown.reason.startswith("stale sample")


def test_cooldown_and_stabilization_time_left_are_counted_from_now() -> None:
    state = ContainerState(
        cpu=ResourceState(last_up_at=T0.timestamp() - 10, down_since=T0.timestamp() - 30),
    )
    policy = view(cooldown_up_s=60, scale_down_stabilization_s=120)
    shown = explain_sample(policy, sample(reading(101)), {101: encode_state(state)}, {}, NOW)[101]
    assert shown.cpu.cooldown_up_left_s == 49.0
    assert shown.cpu.stabilization_left_s == 89.0
    assert shown.verdict == "hold" and "stabilization window" in shown.reason


def test_an_unreadable_state_is_skipped_not_fatal() -> None:
    shown = explain_sample(view(), sample(reading(101)), {101: b"{not json"}, {}, NOW)[101]
    assert shown.verdict == "none" and shown.reason.startswith("within thresholds")


def test_an_expired_pending_intent_is_no_longer_pending() -> None:
    busy = sample(reading(101, cpu_pct=95.0))
    policy = view()
    decision = decide(busy, policy, {}, NOW)
    old = decision.state_changes[101].model_copy(
        update={"pending": PendingIntent(intent=decision.intents[0], until=T0.timestamp() - 1)}
    )
    shown = explain_sample(policy, busy, {101: encode_state(old)}, {}, NOW)[101]
    assert shown.verdict != "pending" and shown.pending is None


def test_a_node_pause_is_shown_on_that_node_only_and_the_narrowest_pause_wins() -> None:
    busy = sample(reading(101, cpu_pct=95.0), reading(102, cpu_pct=95.0))
    node_pause = PauseEntry(mode="scale-up", reason="firmware update")
    mine = PauseEntry(mode="all", reason="backup")
    policy = {
        "pause.pve1.all": node_pause.model_dump_json().encode(),
        "pause.pve1.102": mine.model_dump_json().encode(),
        "pause.pve2.all": PauseEntry(mode="all").model_dump_json().encode(),
    }
    shown = explain_sample(view(), busy, {}, policy, NOW)
    assert (shown[101].verdict, shown[101].pause, shown[101].pause_scope) == ("hold", node_pause, "node")
    assert (shown[102].pause, shown[102].pause_scope) == (mine, "container")
    elsewhere = explain_sample(view(), sample(reading(101, cpu_pct=95.0), node="pve3"), {}, policy, NOW)
    assert elsewhere[101].verdict == "scale-up" and elsewhere[101].pause is None


def test_a_dry_run_pending_intent_stops_being_pending_when_dry_run_is_switched_off() -> None:
    busy = sample(reading(101, cpu_pct=95.0))
    switched_on = {"dry_run": DryRunEntry(enabled=True).model_dump_json().encode()}
    decision = decide(busy, view().with_dry_run(DryRunEntry(enabled=True)), {}, NOW)
    stored = {101: encode_state(decision.state_changes[101])}
    assert decision.intents[0].dry_run is True
    shown = explain_sample(view(), busy, stored, switched_on, NOW)[101]
    assert shown.verdict == "pending" and shown.pending == decision.intents[0]
    shown = explain_sample(view(), busy, stored, {}, NOW)[101]  # switch removed, the file says act
    assert shown.verdict == "scale-up" and shown.pending is None


def test_usage_above_the_threshold_not_yet_sustained_is_a_hold_with_the_time_left() -> None:
    busy = sample(reading(101, cpu_pct=85.0))  # above 80%, short of saturation (95%)
    policy = view(scale_up_sustain_s=30)
    decision = decide(busy, policy, {}, NOW)
    assert decision.intents == ()
    stored = {101: encode_state(decision.state_changes[101])}
    shown = explain_sample(policy, busy, stored, {}, NOW)[101]
    assert shown.verdict == "hold"
    assert shown.reason == (
        "cpu above its upper threshold for 10s: a scale-up waits until it has lasted 30s "
        "(scale_up_sustain_s) or the container is saturated"
    )
    assert shown.cpu.scale_up_sustain_left_s == 19.0  # measured from now, a second after the sample
