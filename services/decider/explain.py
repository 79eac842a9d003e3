"""What the policy says about each container of a sample right now, for the console.

Pure, like the policy package it calls: the same `decide` the replicas run, on the
latest sample and the stored state, plus the timers (cooldowns, stabilization window,
warm-up, boosts) read off that state. The console receives this function from the
composition root (`cli/console.py`), so it never imports the decider.

The sample is decided again with its position stamp removed from the state: a replica
has already decided it, and the stamp would only answer "already decided". Every
window is measured on the sample's own clock, so the second evaluation gives the same
intent; a pending intent that has not been applied yet is reported as pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from pydantic import ValidationError

from services.decider.policy import ContainerState, PolicyView, decide, decode_state
from services.decider.policy.pause import pauses_from
from services.decider.policy.state import ResourceState
from shared.config import AutoscaleConfig, ScalingPolicy
from shared.dry_run import DRY_RUN_KEY, read_dry_run
from shared.explanation import ContainerExplanation, Explain, ResourceTimers, Verdict
from shared.models import ContainerReading, NodeSample, ScaleIntent
from shared.pauses import PAUSE_KEY_PREFIX, PauseEntry, PauseScope

# The policy keys an operator compares usage and size with, by their configuration names.
THRESHOLD_KEYS = (
    "cpu_upper_threshold", "cpu_lower_threshold", "memory_upper_threshold", "memory_lower_threshold",
    "min_cores", "max_cores", "min_memory", "max_memory",
)  # fmt: skip


def make_explainer(config: AutoscaleConfig) -> Explain:
    view = PolicyView(config)

    def explain(
        sample: NodeSample, states: Mapping[int, bytes], policy: Mapping[str, bytes], now: datetime
    ) -> dict[int, ContainerExplanation]:
        return explain_sample(view, sample, states, policy, now)

    return explain


def explain_sample(
    view: PolicyView,
    sample: NodeSample,
    raw_states: Mapping[int, bytes],
    raw_policy: Mapping[str, bytes],
    now: datetime,
) -> dict[int, ContainerExplanation]:
    view = view_with_operator(view, raw_policy)
    states = _states(raw_states)
    unstamped = {vmid: s.model_copy(update={"boot_id": None, "seq": None}) for vmid, s in states.items()}
    decision = decide(sample, view, unstamped, now)
    intents = {intent.vmid: intent for intent in decision.intents}
    at = now.timestamp()
    result = {}
    for reading in sample.containers:
        state = states.get(reading.vmid)
        policy = view.policy_for(reading.vmid)
        verdict, target_intent, reason = _verdict(
            reading, state, sample, intents.get(reading.vmid), decision.notes.get(reading.vmid),
            decision.ignored, view, policy,
        )  # fmt: skip
        pause, scope = _pause(view, sample.node, reading.vmid, policy, now)
        result[reading.vmid] = ContainerExplanation(
            vmid=reading.vmid,
            tier=view.config.tier_name_of(reading.vmid),
            verdict=verdict,
            target=target_intent.target if target_intent else None,
            rule=target_intent.reason.rule if target_intent else None,
            reason=reason,
            pending=_pending(state, reading, sample, view),
            pause=pause,
            pause_scope=scope,
            warmup_left_s=_warmup_left(reading, state, sample, policy, at),
            cpu=_timers(state.cpu if state else None, policy, at, "cpu"),
            memory=_timers(state.memory if state else None, policy, at, "memory"),
            thresholds={key: getattr(policy, key) for key in THRESHOLD_KEYS},
        )
    return result


def view_with_operator(view: PolicyView, raw_policy: Mapping[str, bytes]) -> PolicyView:
    """The policy with the operator's pauses and dry-run switch of `autoscale_policy`."""
    switch = read_dry_run(raw_policy.get(DRY_RUN_KEY))
    return view.with_pauses(pauses_from(_pauses(raw_policy))).with_dry_run(switch)


def _verdict(
    reading: ContainerReading,
    state: ContainerState | None,
    sample: NodeSample,
    intent: ScaleIntent | None,
    note: str | None,
    ignored: str | None,
    view: PolicyView,
    policy: ScalingPolicy,
) -> tuple[Verdict, ScaleIntent | None, str]:
    if ignored:
        return "ignored", None, ignored
    if reading.vmid in view.ignored:
        return "none", None, "listed in ignore_lxc"
    if reading.status != "running":
        return "none", None, "stopped"
    pending = _pending(state, reading, sample, view)
    if pending is not None:
        return "pending", pending, f"waiting for the actuator: {pending.reason.summary}"
    if intent is not None:
        direction = intent.direction
        return ("none" if direction == "no-change" else direction), intent, intent.reason.summary
    if note:
        return "hold", None, note
    held = _held_by_window(state, policy, sample.taken_at.timestamp())
    if held:
        return "hold", None, held
    return "none", None, _quiet_reason(reading, policy)


def _held_by_window(state: ContainerState | None, policy: ScalingPolicy, at: float) -> str | None:
    if state is None:
        return None
    for name, kept in (("cpu", state.cpu), ("memory", state.memory)):
        if kept.up_since is not None:
            lasted = max(0.0, at - kept.up_since)
            return (
                f"{name} above its upper threshold for {lasted:.0f}s: a scale-up waits until it has "
                f"lasted {policy.scale_up_sustain_s:g}s (scale_up_sustain_s) or the container is saturated"
            )
        if kept.down_since is not None:
            return f"{name} below its lower threshold: scale-down held by the stabilization window"
    return None


def _quiet_reason(reading: ContainerReading, policy: ScalingPolicy) -> str:
    missing = [
        f"{name} reading missing ({why})"
        for name, why in (("cpu", reading.cpu_missing), ("memory", reading.memory_missing))
        if why is not None
    ]
    if missing:
        return "; ".join(missing) + ": never acted on"
    tolerance = f", tolerance {policy.tolerance:.0%}" if policy.tolerance else ""
    return (
        f"within thresholds (cpu {reading.cpu_pct:.1f}% in {policy.cpu_lower_threshold:g}–"
        f"{policy.cpu_upper_threshold:g}%, memory {reading.memory_pct:.1f}% in "
        f"{policy.memory_lower_threshold:g}–{policy.memory_upper_threshold:g}%{tolerance})"
    )


def _pending(
    state: ContainerState | None, reading: ContainerReading, sample: NodeSample, view: PolicyView
) -> ScaleIntent | None:
    """The decided intent, while the container still has the size it expects and it is not
    expired (a dry-run one only while dry-run is on: the deciders stop waiting for it then)."""
    if state is None or state.pending is None:
        return None
    intent = state.pending.intent
    if intent.dry_run and not view.dry_run:
        return None
    expected = intent.expected
    waiting = reading.cores == expected.cores and reading.memory_mb == expected.memory_mb
    return intent if waiting and sample.taken_at.timestamp() < state.pending.until else None


def _pause(
    view: PolicyView, node: str, vmid: int, policy: ScalingPolicy, now: datetime
) -> tuple[PauseEntry | None, PauseScope | Literal["tier"] | None]:
    """The narrowest operator pause in force, else the tier's."""
    for scope, entry in view.pauses.in_force(node, vmid, now):
        return entry, scope
    if policy.pause != "none":
        return PauseEntry(mode=policy.pause, reason="tier configuration"), "tier"
    return None, None


def _warmup_left(
    reading: ContainerReading,
    state: ContainerState | None,
    sample: NodeSample,
    policy: ScalingPolicy,
    at: float,
) -> float | None:
    if policy.warmup_s <= 0:
        return None
    ends = []
    if reading.running_for_s is not None:
        ends.append(sample.taken_at.timestamp() - reading.running_for_s + policy.warmup_s)
    if state is not None and state.last_resize_at is not None:
        ends.append(state.last_resize_at + policy.warmup_s)
    left = max(ends, default=at) - at
    return left if left > 0 else None


def _timers(kept: ResourceState | None, policy: ScalingPolicy, at: float, resource: str) -> ResourceTimers:
    if kept is None:
        return ResourceTimers()
    boost = kept.boost
    return ResourceTimers(
        cooldown_up_left_s=_left(kept.last_up_at, policy.cooldown_up_s, at),
        cooldown_down_left_s=_left(kept.last_change_at, policy.cooldown_down_s, at),
        scale_up_sustain_left_s=_left(kept.up_since, policy.scale_up_sustain_s, at),
        stabilization_left_s=_left(kept.down_since, policy.scale_down_stabilization_s, at),
        boost_original=boost.original if boost else None,
        boost_left_s=_left(boost.at, policy.boost_duration, at) if boost else None,
    )


def _left(since: float | None, duration_s: float, at: float) -> float | None:
    if since is None or duration_s <= 0:
        return None
    left = since + duration_s - at
    return round(left, 1) if left > 0 else None


def _states(raw: Mapping[int, bytes]) -> dict[int, ContainerState]:
    states = {}
    for vmid, data in raw.items():
        try:
            states[vmid] = decode_state(data)
        except ValueError:
            continue  # unreadable state: the deciders replace it on their next write
    return states


def _pauses(raw: Mapping[str, bytes]) -> dict[str, PauseEntry]:
    entries = {}
    for key, data in raw.items():
        if not key.startswith(PAUSE_KEY_PREFIX):
            continue
        try:
            entries[key] = PauseEntry.model_validate_json(data)
        except ValidationError:
            continue
    return entries
