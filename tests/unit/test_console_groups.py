"""Horizontal groups in the console: configured sections, the bucket's records and the
tagged members the samples show, merged by group name."""

from __future__ import annotations

from datetime import timedelta

from support import T0, reading, sample

from services.console.groups import group_views
from shared.config import parse_config
from shared.groups import ActionLock, Member, MembershipRecord, group_tag

CONFIG = parse_config(
    {"HORIZONTAL_SCALING_GROUP_web": {"base_snapshot_name": 101, "min_instances": 1, "max_instances": 3}},
    env={},
)
INTENT = "0123456789abcdef0123456789abcdef"
STOPPED_CLONE = reading(206, status="stopped", cpu_pct=None, memory_pct=None, tags=(group_tag("web"),))


def test_a_group_shows_its_source_its_clones_by_record_and_tag_and_the_action_in_flight() -> None:
    samples = {
        "pve1": sample(
            reading(101, cpu_pct=90.0, memory_pct=40.0),
            reading(205, cpu_pct=70.0, memory_pct=20.0, tags=(group_tag("web"),)),  # adopted by its tag
            reading(300, cpu_pct=5.0),  # no group
        ),
        "pve2": sample(STOPPED_CLONE, node="pve2"),
    }
    record = MembershipRecord(
        group="web", updated_at=T0,
        members=(Member(vmid=101, node="pve1", created=False),
                 Member(vmid=205, node="pve1", created=True, created_at=T0, intent_id=INTENT)),
    )  # fmt: skip
    lock = ActionLock(group="web", action="scale-out", intent_id=INTENT, node="pve1", vmid=101,
                      taken_at=T0, expires_at=T0 + timedelta(minutes=5))  # fmt: skip
    records = {
        "members.web": record.to_bytes(), "action.web": lock.to_bytes(),
        "ips.web.10-0-0-21": b"{}", "ids.205": b"{}",
    }  # fmt: skip
    [web] = group_views(CONFIG.groups, samples, records, T0 + timedelta(minutes=1))
    assert web["group"] == "web" and (web["min_instances"], web["max_instances"]) == (1, 3)
    members = {m["vmid"]: m for m in web["members"]}
    assert set(members) == {101, 205, 206}
    assert (members[101]["created"], members[205]["created"], members[206]["tagged"]) == (False, True, True)
    assert members[206] | {"hostname": None} == {
        "vmid": 206, "node": "pve2", "hostname": None, "status": "stopped", "created": False, "tagged": True,
        "cpu_pct": None, "memory_pct": None,
    }  # fmt: skip
    assert (web["running"], web["cpu_pct"], web["memory_pct"]) == (2, 80.0, 30.0)
    assert web["action"]["action"] == "scale-out" and web["action"]["expired"] is False
    assert web["reserved_ips"] == ["10-0-0-21"]


def test_an_expired_lock_and_an_unreadable_record_are_shown_as_such() -> None:
    lock = ActionLock(group="web", action="scale-in", intent_id=INTENT, node="pve1", vmid=205,
                      taken_at=T0, expires_at=T0 + timedelta(seconds=30))  # fmt: skip
    records = {"members.web": b"{not json", "action.web": lock.to_bytes()}
    [web] = group_views(CONFIG.groups, {"pve1": sample(reading(101))}, records, T0 + timedelta(minutes=1))
    assert web["action"]["expired"] is True
    assert [m["vmid"] for m in web["members"]] == [101] and web["record_updated_at"] is None


def test_a_recorded_group_no_longer_configured_is_still_listed() -> None:
    clone = Member(vmid=150, node="pve1", created=True)
    record = MembershipRecord(group="old", updated_at=T0, members=(clone,))
    [old, web] = group_views(CONFIG.groups, {}, {"members.old": record.to_bytes()}, T0)
    assert (old["group"], old["configured"], web["configured"]) == ("old", False, True)
    assert old["members"][0]["status"] == "not in any sample"
