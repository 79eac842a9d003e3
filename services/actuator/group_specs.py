"""From a group intent and the actuator's own group settings to what the plan needs. Pure.

The actuator trusts its configuration, not the intent: the group must be one it knows,
a scale-out must clone that group's source on this node, and everything the commands
carry (bridge, gateway, storage, clone mode, destroy) comes from the group's section.
"""

from __future__ import annotations

from services.actuator import group_commands as gc
from services.actuator.group_plan import Finish, InSpec, OutSpec
from services.actuator.ip_pool import PoolError, parse_pool
from shared.config import HorizontalGroup
from shared.models import GroupIntent

SNAPSHOT_PREFIX = "autoscale-"


def screen(intent: GroupIntent, group: HorizontalGroup | None, node: str) -> Finish | None:
    """Why this actuator must not run the intent at all, or None."""
    if intent.node != node:
        return Finish(
            "rejected", "wrong-node", f"intent for node {intent.node} reached the actuator of {node}"
        )
    if group is None:
        return Finish(
            "rejected", "unknown-group", f"group {intent.group} is not in this actuator's configuration"
        )
    if intent.action == "scale-out" and intent.vmid != group.source_vmid:
        message = f"group {intent.group} clones {group.source_vmid}, not {intent.vmid}"
        return Finish("rejected", "not-the-source", message)
    if intent.action == "scale-out" and group.clone_network_type == "static":
        try:
            parse_pool(str(entry) for entry in group.static_ip_range)
        except PoolError as exc:
            return Finish("rejected", "invalid-pool", str(exc))
    return None


def snapname(intent: GroupIntent) -> str:
    """Per intent, so a resumed operation finds (and deletes) its own snapshot only."""
    return gc.check_snapname(f"{SNAPSHOT_PREFIX}{intent.intent_id[:16]}")


def out_spec(intent: GroupIntent, group: HorizontalGroup, clone_timeout_s: float, node: str) -> OutSpec:
    """`node` is the actuator's own: a target there is no placement elsewhere."""
    return OutSpec(
        source_vmid=group.source_vmid,
        snapname=snapname(intent),
        hostname_prefix=intent.group.replace("_", "-"),
        tag=gc.group_tag(intent.group),
        bridge=group.bridge,
        gateway=str(group.gateway) if group.gateway is not None else None,
        static_ip=group.clone_network_type == "static",
        full=None if group.clone_mode is None else group.clone_mode == "full",
        storage=group.target_storage,
        clone_timeout_s=clone_timeout_s,
        target=intent.target_node if intent.target_node != node else None,
    )


def in_spec(intent: GroupIntent, group: HorizontalGroup) -> InSpec:
    return InSpec(
        member_vmid=intent.vmid,
        tag=gc.group_tag(intent.group),
        destroy=group.scale_in_policy == "destroy" and group.allow_destroy,
        protected=frozenset({group.source_vmid, *group.lxc_containers}),
    )
