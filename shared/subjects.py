"""Every NATS name the system uses: subjects, streams, consumers, buckets.

One place, so a rename cannot leave a service talking to the wrong subject.
Node names and vmids are validated before they are put into a subject.
"""

from __future__ import annotations

import ipaddress

from shared.validation import check_group_name, check_node_name, check_vmid

ROOT = "autoscale"

METRICS_PREFIX = f"{ROOT}.metrics"
INTENTS_PREFIX = f"{ROOT}.intents"
EVENTS_PREFIX = f"{ROOT}.events"

METRICS_ALL = f"{METRICS_PREFIX}.*"
INTENTS_ALL = f"{INTENTS_PREFIX}.*"
EVENTS_ALL = f"{EVENTS_PREFIX}.>"

METRICS_STREAM = "AUTOSCALE_METRICS"
INTENTS_STREAM = "AUTOSCALE_INTENTS"
EVENTS_STREAM = "AUTOSCALE_EVENTS"

# One durable pull consumer shared by every decider replica: any replica may take any sample.
DECIDER_CONSUMER = "deciders"

STATE_BUCKET = "autoscale_state"  # decider memory: cooldowns, windows, boosts, baselines
BACKUP_BUCKET = "autoscale_backups"  # original sizes for rollback, written before the first change
ACTUATOR_BUCKET = "autoscale_actuator"  # journal: in-flight changes and decided outcomes
POLICY_BUCKET = "autoscale_policy"  # the running policy, watched by decider replicas
NOTIFIER_BUCKET = "autoscale_notifier"  # one record per (event, channel) delivered or given up
# Horizontal groups: membership, reserved clone ids and IPs, the deciders' action locks
# (docs/horizontal.md; record models in shared/groups.py).
GROUPS_BUCKET = "autoscale_groups"

# Notification channels; each has its own durable consumer on the events stream.
NOTIFIER_CHANNELS = ("gotify", "email", "uptime-kuma", "webhook")


def metrics_subject(node: str) -> str:
    return f"{METRICS_PREFIX}.{check_node_name(node)}"


def intents_subject(node: str) -> str:
    return f"{INTENTS_PREFIX}.{check_node_name(node)}"


def events_subject(node: str, vmid: int) -> str:
    return f"{EVENTS_PREFIX}.{check_node_name(node)}.{check_vmid(vmid)}"


def events_filter(node: str | None = None, vmid: int | None = None) -> str:
    """Subject filter for replaying events, narrowed by node and/or vmid."""
    node_token = check_node_name(node) if node is not None else "*"
    vmid_token = str(check_vmid(vmid)) if vmid is not None else "*"
    return f"{EVENTS_PREFIX}.{node_token}.{vmid_token}"


def actuator_consumer(node: str) -> str:
    """Durable name of the actuator of one node (WorkQueue filters must not overlap)."""
    return f"actuator-{check_node_name(node)}"


def state_key(node: str, vmid: int) -> str:
    """KV key of one container, e.g. `pve1.101` (KV keys allow dots)."""
    return f"{check_node_name(node)}.{check_vmid(vmid)}"


def notifier_consumer(channel: str) -> str:
    """Durable name of one notification channel's consumer, e.g. `notifier-gotify`."""
    if channel not in NOTIFIER_CHANNELS:
        raise ValueError(f"unknown notification channel {channel!r}")
    return f"notifier-{channel}"


def group_members_key(group: str) -> str:
    """The group's membership record, written by actuators with compare-and-set."""
    return f"members.{check_group_name(group)}"


def group_id_key(vmid: int) -> str:
    """A clone id reserved (or in use) by a group: ids are cluster-wide in Proxmox."""
    return f"ids.{check_vmid(vmid)}"


def group_ip_key(group: str, ip: str) -> str:
    """A static address of the group's pool handed to a clone, e.g. `ips.web.10-0-0-21`."""
    address = ipaddress.ip_address(ip.split("/", 1)[0])  # refuses anything but an address
    return f"ips.{check_group_name(group)}.{str(address).replace('.', '-').replace(':', '-')}"


def group_outcome_key(node: str, group: str) -> str:
    """The last terminal outcome of a group intent that node's actuator ran: per node, so
    an actuator can only report (and end) the actions sent to its own node."""
    return f"outcome.{check_node_name(node)}.{check_group_name(group)}"


def group_action_key(group: str) -> str:
    """The deciders' one-action-at-a-time lock of a group (taken with compare-and-set)."""
    return f"action.{check_group_name(group)}"
