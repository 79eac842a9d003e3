"""Test helpers for group actions: a group's configuration, its intents, what the node shows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from actuator_harness import NODE, EventReader, publish_intent

from services.actuator.ct_view import CtView, parse_ct
from shared import subjects
from shared.config import AutoscaleConfig, parse_config
from shared.groups import MembershipRecord
from shared.models import DecisionReason, GroupAction, GroupIntent, ScaleEvent
from simnode.tree import SimNode

SOURCE = 101
GROUP = "web"
TAG = f"autoscale-group-{GROUP}"


def group_config(**keys: Any) -> AutoscaleConfig:
    section = {
        "base_snapshot_name": SOURCE,
        "starting_clone_id": 200,
        "clone_network_type": "static",
        "static_ip_range": ["10.0.0.21", "10.0.0.22", "10.0.0.23"],
        "gateway": "10.0.0.1",
        "max_instances": 5,
        **keys,
    }
    return parse_config({"HORIZONTAL_SCALING_GROUP_web": section}, env={})


def group_config_file(sim: SimNode, extra: str = "") -> str:
    """A config file for an actuator process of `sim`: quick retries (ack_wait 5 s), the
    group with a two-address pool, and `extra` lines for the group's section."""
    return f"""\
ACTUATOR:
  command_timeout_s: 2
  max_attempts: 3
  backoff_initial_s: 0.01
  backoff_max_s: 0.05
  pvesh_path: {sim.pvesh_path}
HORIZONTAL_SCALING_GROUP_{GROUP}:
  base_snapshot_name: {SOURCE}
  starting_clone_id: 200
  clone_network_type: static
  static_ip_range: [10.0.0.21, 10.0.0.22]
  gateway: 10.0.0.1
{extra}"""


def group_intent(
    action: GroupAction = "scale-out",
    vmid: int = SOURCE,
    source_id: str = "pve1:boot-a:1",
    node: str = NODE,
    **extra: Any,
) -> GroupIntent:
    reason = DecisionReason(rule=f"group-{action}", summary="group cpu 91% > 80%", inputs={"cpu_pct": 91.0})
    return GroupIntent.build(
        group=GROUP, action=action, node=node, vmid=vmid, reason=reason, source_id=source_id,
        created_at=datetime.now(UTC), ttl_s=120, **extra,
    )  # fmt: skip


async def run_group_intent(js: Any, reader: EventReader, intent: GroupIntent) -> ScaleEvent:
    await publish_intent(js, intent)  # type: ignore[arg-type]  # same subject, same dedupe header
    [event] = await reader.take(1, timeout_s=30)
    assert event.intent_id == intent.intent_id
    return event


def view(sim: SimNode, vmid: int) -> CtView | None:
    path = sim.conf_path(vmid)
    return parse_ct(path.read_text(encoding="utf-8")) if path.exists() else None


def clones(sim: SimNode, *originals: int) -> list[int]:
    return [vmid for vmid in sim.vmids() if vmid not in (SOURCE, *originals)]


def pct_calls(sim: SimNode, command: str) -> list[list[str]]:
    return [call for call in sim.pct_calls() if call[:1] == [command]]


async def membership(js: Any) -> list[int]:
    kv = await js.key_value(subjects.GROUPS_BUCKET)
    try:
        entry = await kv.get(subjects.group_members_key(GROUP))
    except Exception:
        return []
    return [m.vmid for m in MembershipRecord.from_bytes(entry.value).members]
