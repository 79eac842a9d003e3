"""Horizontal groups in the console: the members and the decision the deciders' own
`decide_group` gives on the same samples and records, with each member's reading, the
group's bounds and its last action."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from support import T0, reading, sample

from services.console.groups import group_views
from services.decider.explain_groups import explain_all_groups
from services.decider.group_policy import decide_group
from services.decider.policy import PolicyView
from shared.config import parse_config
from shared.groups import ActionLock, Member, MembershipRecord, group_tag

CONFIG = parse_config(
    {"HORIZONTAL_SCALING_GROUP_web": {"base_snapshot_name": 101, "min_instances": 1, "max_instances": 4,
                                      "scale_out_grace_period": 0, "ready_after_s": 30}},
    env={},
)  # fmt: skip
NOW = T0 + timedelta(seconds=1)
INTENT = "0123456789abcdef0123456789abcdef"
TAG = (group_tag("web"),)


def views(samples: dict[str, Any], records: dict[str, bytes]) -> list[dict[str, Any]]:
    explained = explain_all_groups(PolicyView(CONFIG), samples, records, NOW)
    return group_views(explained, CONFIG.groups, samples, records, NOW)


def test_a_busy_group_shows_the_scale_out_the_deciders_would_decide_with_its_members() -> None:
    samples = {
        "pve1": sample(
            reading(101, cpu_pct=95.0, memory_pct=40.0, running_for_s=600.0),  # the source
            reading(205, cpu_pct=85.0, memory_pct=20.0, running_for_s=600.0, tags=TAG),  # a clone, by its tag
            reading(206, cpu_pct=5.0, memory_pct=5.0, running_for_s=5.0, tags=TAG),  # not ready yet
            reading(300, cpu_pct=5.0),  # no group
        ),
    }
    [web] = views(samples, {})
    decision = decide_group("web", CONFIG.groups["web"], samples, None, None, PolicyView(CONFIG), NOW)
    assert decision.intent is not None
    assert web["decision"] == {"reason": decision.note, "action": "scale-out", "vmid": 101, "node": "pve1",
                               "dry_run": False}  # fmt: skip
    assert [(m["vmid"], m["kind"], m["ready"]) for m in web["members"]] == [
        (101, "source", True), (205, "clone", True), (206, "clone", False),
    ]  # fmt: skip
    assert (web["running"], web["ready"], web["cpu_pct"], web["memory_pct"]) == (3, 2, 90.0, 30.0)
    assert (web["min_instances"], web["max_instances"], web["source"]) == (1, 4, 101)


def test_a_clone_known_only_from_the_record_and_the_pending_action_are_shown() -> None:
    record = MembershipRecord(group="web", updated_at=T0, members=(
        Member(vmid=101, node="pve1", created=False), Member(vmid=207, node="pve2", created=True),
    ))  # fmt: skip
    lock = ActionLock(group="web", action="scale-out", intent_id=INTENT, node="pve1", vmid=101,
                      taken_at=T0 - timedelta(minutes=10), expires_at=T0 - timedelta(seconds=1))  # fmt: skip
    records = {"members.web": record.to_bytes(), "action.web": lock.to_bytes(), "ips.web.10-0-0-21": b"{}"}
    [web] = views({"pve1": sample(reading(101, running_for_s=600.0))}, records)
    clone = web["members"][1]
    seen = (clone["vmid"], clone["kind"], clone["node"], clone["status"])
    assert seen == (207, "clone", "pve2", "stale sample")
    assert web["action"]["action"] == "scale-out" and web["action"]["expired"] is True
    assert web["reserved_ips"] == ["10-0-0-21"]
    assert web["decision"]["action"] is None and web["decision"]["reason"]


def test_an_unreadable_record_is_left_out_not_fatal() -> None:
    [web] = views({"pve1": sample(reading(101))}, {"members.web": b"{not json", "action.web": b"[]"})
    assert [m["vmid"] for m in web["members"]] == [101] and web["action"] is None
