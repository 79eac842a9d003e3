"""The horizontal group decision: table cases for each rule, then properties for any input."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.decider.group_policy import decide_group
from services.decider.policy import PolicyView
from shared.config import parse_config
from shared.groups import ActionLock, ActionOutcome, Member, MembershipRecord
from shared.models import ContainerReading, HostTotals, NodeSample

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SOURCE, LISTED = 200, 900  # the listed member has the highest id: never a scale-in victim


def view(**group: Any) -> PolicyView:
    section = {
        "base_snapshot_name": str(SOURCE), "lxc_containers": [LISTED], "min_instances": 2, "max_instances": 4,
        "scale_out_grace_period": 300, "scale_in_grace_period": 600, "ready_after_s": 60, **group,
    }  # fmt: skip
    return PolicyView(parse_config({"HORIZONTAL_SCALING_GROUP_web": section}))


def ct(vmid: int, cpu: float, memory: float = 50.0, *, up_s: float = 600, tag: bool = False,
       status: str = "running") -> ContainerReading:  # fmt: skip
    running = status == "running"
    return ContainerReading(
        vmid=vmid, status=status, cores=2, memory_mb=1024,  # type: ignore[arg-type]
        cpu_pct=cpu if running else None, memory_pct=memory if running else None,
        running_for_s=up_s if running else None, tags=("autoscale-group-web",) if tag else (),
    )  # fmt: skip


def node(name: str, *readings: ContainerReading, age_s: float = 5, used_cores: int = 4,
         at: datetime = NOW) -> NodeSample:  # fmt: skip
    return NodeSample(
        node=name, seq=1, boot_id="b", taken_at=at - timedelta(seconds=age_s), interval_s=10, source="sim",
        host=HostTotals(cores=16, memory_mb=32768, allocated_cores_running=used_cores,
                        allocated_memory_mb_running=4096, allocated_cores_all=used_cores,
                        allocated_memory_mb_all=4096),
        containers=readings,
    )  # fmt: skip


def cluster(*samples: NodeSample) -> dict[str, NodeSample]:
    return {s.node: s for s in samples}


def record(*clones: tuple[int, str, int]) -> MembershipRecord:
    """Clones as (vmid, node, minutes after NOW - 1 h when the group made it)."""
    return MembershipRecord(
        group="web",
        members=tuple(
            Member(vmid=v, node=n, created=True, created_at=NOW - timedelta(hours=1) + timedelta(minutes=m))
            for v, n, m in clones
        ),
        updated_at=NOW,
    )


def done_lock(ago_s: float, action: str = "scale-out") -> ActionLock:
    at = NOW - timedelta(seconds=ago_s)
    return ActionLock(
        group="web", action=action, intent_id="c" * 32, node="pve1", vmid=SOURCE,  # type: ignore[arg-type]
        taken_at=at, expires_at=at + timedelta(seconds=900), state="done", done_at=at,
    )  # fmt: skip


def decide(samples: dict[str, NodeSample], *, rec: MembershipRecord | None = None,
           lock: ActionLock | None = None, now: datetime = NOW, ended: ActionOutcome | None = None,
           **group: Any) -> Any:  # fmt: skip
    policy = view(**group)
    return decide_group("web", policy.config.groups["web"], samples, rec, lock, policy, now, ended)


def reported(lock: ActionLock, outcome: str, detail: str, **fields: Any) -> ActionOutcome:
    """What the lock's node's actuator writes after the intent's terminal event."""
    values = {"group": "web", "node": lock.node, "intent_id": lock.intent_id, "action": lock.action,
              "outcome": outcome, "detail": detail, "occurred_at": NOW + timedelta(seconds=3)}  # fmt: skip
    return ActionOutcome(**{**values, **fields})


HOT = cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 85)))


def test_either_average_above_its_upper_threshold_clones_the_source_on_its_node() -> None:
    decision = decide(HOT)
    intent = decision.intent
    assert (intent.action, intent.node, intent.vmid) == ("scale-out", "pve1", SOURCE)
    assert intent.target_node is None
    assert intent.reason.rule == "group-scale-out" and "cpu 90.0% > 80%" in intent.reason.summary
    assert intent.reason.inputs["avg_cpu_pct"] == 90.0 and intent.reason.state["running"] == 2
    assert decision.lock.state == "pending" and decision.lock.intent_id == intent.intent_id
    memory_only = decide(cluster(node("pve1", ct(SOURCE, 10, 95), ct(LISTED, 10, 90))))
    assert memory_only.intent.action == "scale-out" and "memory 92.5% > 80%" in memory_only.note


def test_two_replicas_with_the_same_view_publish_the_same_intent() -> None:
    assert decide(HOT).intent.intent_id == decide(HOT).intent.intent_id


def test_no_scale_out_at_max_instances_counting_booting_clones() -> None:
    booting = ct(202, 0, up_s=5, tag=True)
    full = cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 95), ct(201, 95, tag=True), booting))
    decision = decide(full)
    assert decision.intent is None and "at max_instances 4" in decision.note


@pytest.mark.parametrize(("ago_s", "acts"), [(100, False), (299, False), (300, True), (3600, True)])
def test_the_grace_period_counts_from_the_last_action_of_either_kind(ago_s: float, acts: bool) -> None:
    assert (decide(HOT, lock=done_lock(ago_s, "scale-in")).intent is not None) is acts


def test_a_member_on_a_stale_node_makes_the_group_wait_never_shrink() -> None:
    cold = cluster(node("pve1", ct(SOURCE, 1, 1), ct(LISTED, 1, 1), ct(201, 1, 1, tag=True)),
                   node("pve2", ct(202, 1, 1, tag=True), age_s=120))  # fmt: skip
    decision = decide(cold, rec=record((201, "pve1", 1), (202, "pve2", 2)))
    assert decision.intent is None and "waiting: stale samples from pve2" in decision.note
    # pve2's sample is gone altogether: the record still places 202 there
    gone = cluster(node("pve1", ct(SOURCE, 1, 1), ct(LISTED, 1, 1), ct(201, 1, 1, tag=True)))
    assert "stale samples from pve2" in decide(gone, rec=record((201, "pve1", 1), (202, "pve2", 2))).note


def test_members_on_every_node_count_and_booting_clones_do_not() -> None:
    # pve2's member pulls the average above 80%; the booting clone's 0% does not pull it down.
    spread = cluster(node("pve1", ct(SOURCE, 75), ct(LISTED, 75), ct(202, 0, up_s=10, tag=True)),
                     node("pve2", ct(201, 100, tag=True)))  # fmt: skip
    decision = decide(spread, max_instances=5)
    assert decision.intent is not None and "over 3 ready members" in decision.note


def test_scale_in_removes_the_newest_clone_never_the_source_or_a_listed_member() -> None:
    # 205 is the newest by the record even though 210 has the higher id.
    quiet = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5), ct(210, 5, 5, tag=True)),
                    node("pve2", ct(205, 5, 5, tag=True)))  # fmt: skip
    decision = decide(quiet, rec=record((210, "pve1", 1), (205, "pve2", 30)))
    intent = decision.intent
    assert (intent.action, intent.vmid, intent.node) == ("scale-in", 205, "pve2")
    assert "stop the newest clone 205" in intent.reason.summary
    with_destroy = decide(quiet, rec=record((210, "pve1", 1), (205, "pve2", 30)),
                          scale_in_policy="destroy", allow_destroy=True)  # fmt: skip
    assert "destroy the newest clone 205" in with_destroy.note


def test_scale_in_needs_both_averages_low_and_more_than_min_instances() -> None:
    half = cluster(node("pve1", ct(SOURCE, 5, 50), ct(LISTED, 5, 50), ct(201, 5, 50, tag=True)))
    assert decide(half).intent is None  # memory is not below its lower threshold
    at_min = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5)))
    assert "at min_instances 2" in decide(at_min).note
    no_clone = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5)))
    assert "no running clone" in decide(no_clone, min_instances=1).note


def test_a_tagged_clone_the_record_lost_is_adopted() -> None:
    quiet = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5), ct(207, 5, 5, tag=True)))
    decision = decide(quiet, rec=None)
    assert decision.intent is not None and decision.intent.vmid == 207


def test_a_pending_scale_out_holds_the_group_until_the_new_clone_is_ready() -> None:
    pending = decide(HOT).lock
    later = NOW + timedelta(seconds=30)
    booting = cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 85), ct(201, 1, up_s=10, tag=True), at=later))
    held = decide(booting, lock=pending, now=later)
    assert held.intent is None and held.lock is None and "waiting for scale-out of 200" in held.note
    later = NOW + timedelta(seconds=90)
    ready = cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 85), ct(201, 90, up_s=61, tag=True), at=later))
    released = decide(ready, lock=pending, now=later)
    assert released.intent is None and released.lock.state == "done"
    assert "clone 201 running past the readiness gate" in released.lock.outcome
    # then the grace period, counted from the action, holds the next scale-out
    after = decide(ready, lock=released.lock, now=later + timedelta(seconds=5))
    assert after.intent is None and "grace period holds" in after.note


def test_a_pending_action_whose_outcome_never_shows_expires() -> None:
    pending = decide(HOT, action_timeout_s=600).lock
    assert decide(HOT, lock=pending, now=NOW + timedelta(seconds=599)).lock is None
    expired = decide(HOT, lock=pending, now=NOW + timedelta(seconds=600)).lock
    assert expired.state == "done" and "expired after 600 s" in expired.outcome


@pytest.mark.parametrize(
    ("outcome", "detail"),
    [("failed", "pool-exhausted"), ("rejected", "not-the-source"), ("skipped", "expired"),
     ("failed", "clone-incomplete")],
)  # fmt: skip
def test_a_failed_or_rejected_action_ends_at_once_and_the_group_retries_after_its_grace(
    outcome: str, detail: str
) -> None:
    pending = decide(HOT).lock
    soon = NOW + timedelta(seconds=5)
    released = decide(HOT, lock=pending, now=soon, ended=reported(pending, outcome, detail))
    assert released.intent is None and released.lock.state == "done"
    assert released.lock.outcome == f"{outcome} by the actuator of pve1: {detail}"
    # not the 900 s action_timeout_s: the grace period (300 s from the action) decides the retry
    def hot(at: datetime) -> dict[str, NodeSample]:
        return cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 85), at=at))

    before = NOW + timedelta(seconds=299)
    assert "grace period holds" in decide(hot(before), lock=released.lock, now=before).note
    after = NOW + timedelta(seconds=300)
    retry = decide(hot(after), lock=released.lock, now=after)
    assert retry.intent is not None and retry.intent.action == "scale-out"


def test_only_the_pending_intents_own_non_applied_outcome_from_its_node_ends_it() -> None:
    pending = decide(HOT).lock
    soon = NOW + timedelta(seconds=5)
    others = [
        reported(pending, "failed", "command-failed", intent_id="d" * 32),  # an earlier intent's
        reported(pending, "failed", "command-failed", node="pve2"),  # another node's actuator
        reported(pending, "applied", "scaled-out"),  # applied: the clone's readiness ends it
    ]
    for ended in others:
        held = decide(HOT, lock=pending, now=soon, ended=ended)
        assert held.lock is None and "waiting for scale-out" in held.note, ended
    # a dry run's skip holds its lock for the grace period, as before
    dry = decide(HOT, dry_run=True).lock
    assert decide(HOT, lock=dry, now=soon, ended=reported(dry, "skipped", "dry-run")).lock is None


def test_a_pending_scale_in_is_done_when_the_member_stops_or_vanishes() -> None:
    quiet = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5), ct(201, 5, 5, tag=True)))
    pending = decide(quiet).lock
    off = ct(201, 0, tag=True, status="stopped")
    stopped = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5), off))
    assert decide(stopped, lock=pending).lock.state == "done"
    vanished = cluster(node("pve1", ct(SOURCE, 5, 5), ct(LISTED, 5, 5)))
    assert decide(vanished, lock=pending, rec=record((201, "pve1", 1))).lock.state == "done"


def test_least_loaded_placement_names_the_freer_node() -> None:
    spread = cluster(node("pve1", ct(SOURCE, 95), ct(LISTED, 95), used_cores=14), node("pve2", used_cores=2),
                     node("pve3", used_cores=8))  # fmt: skip
    assert decide(spread, placement="least-loaded").intent.target_node == "pve2"
    assert decide(spread).intent.target_node is None  # same-node by default


def test_a_dry_run_group_marks_its_intents_and_holds_its_lock_a_grace_period() -> None:
    decision = decide(HOT, dry_run=True)
    assert decision.intent.dry_run
    assert decision.lock.expires_at - decision.lock.taken_at == timedelta(seconds=300)


def test_operator_pauses_and_the_dry_run_switch_hold_for_groups_too() -> None:
    from services.decider.policy import Pauses
    from shared.dry_run import DryRunEntry
    from shared.pauses import PauseEntry

    policy = view()
    group = policy.config.groups["web"]
    paused = policy.with_pauses(Pauses(nodes={"pve1": PauseEntry(mode="scale-up")}))
    held = decide_group("web", group, HOT, None, None, paused, NOW)
    assert held.intent is None and "scale-out wanted but paused for pve1/200" in held.note
    switched = policy.with_dry_run(DryRunEntry(enabled=True))
    assert decide_group("web", group, HOT, None, None, switched, NOW).intent.dry_run


def test_no_ready_member_means_no_decision() -> None:
    booting = cluster(node("pve1", ct(SOURCE, 95, up_s=10), ct(LISTED, 95, up_s=10)))
    decision = decide(booting)
    assert decision.intent is None and "no member past the readiness gate" in decision.note


# ---------------------------------------------------------------- properties

Args = tuple[float, float, float, bool, bool]  # cpu, memory, running_for_s, tagged, running
reading_args = st.tuples(
    st.floats(0, 100), st.floats(0, 100), st.sampled_from([5.0, 600.0]), st.booleans(), st.booleans()
)


@settings(max_examples=200, deadline=None)
@given(
    pve1=st.lists(reading_args, min_size=0, max_size=5),
    pve2=st.lists(reading_args, min_size=0, max_size=5),
    pve2_age=st.sampled_from([5.0, 200.0]),
    last_ago=st.one_of(st.none(), st.floats(0, 2000)),
)
def test_any_view_gives_at_most_a_safe_action(
    pve1: Sequence[Args],
    pve2: Sequence[Args],
    pve2_age: float,
    last_ago: float | None,
) -> None:
    def readings(args: Sequence[Args], first: int) -> list[ContainerReading]:
        return [ct(first + i, c, m, up_s=up, tag=tag, status="running" if on else "stopped")
                for i, (c, m, up, tag, on) in enumerate(args)]  # fmt: skip

    samples = cluster(node("pve1", ct(SOURCE, 50), ct(LISTED, 50), *readings(pve1, 300)),
                      node("pve2", *readings(pve2, 400), age_s=pve2_age))  # fmt: skip
    lock = done_lock(last_ago) if last_ago is not None else None
    decision = decide(samples, lock=lock)
    intent = decision.intent
    if intent is None:
        return
    tagged_on_pve2 = any(tag for (_, _, _, tag, _) in pve2)
    assert not (pve2_age > 100 and tagged_on_pve2), "acted while a member's node was stale"
    assert last_ago is None or last_ago >= 300, "acted inside the grace period"
    running = [r for s in samples.values() for r in s.containers
               if r.status == "running" and (r.vmid in (SOURCE, LISTED) or r.tags)]  # fmt: skip
    if intent.action == "scale-out":
        assert len(running) < 4 and intent.vmid == SOURCE
    else:
        assert len(running) > 2 and intent.vmid not in (SOURCE, LISTED)
        assert any(r.vmid == intent.vmid and r.tags and r.status == "running" for r in running)
