"""Every NATS name the system uses: subjects, streams, consumers, buckets.

One place, so a rename cannot leave a service talking to the wrong subject.
Node names and vmids are validated before they are put into a subject.
"""

from __future__ import annotations

from shared.validation import check_node_name, check_vmid

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
